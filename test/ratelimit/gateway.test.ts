// Rate limits through a real gateway, once with the in-memory bucket and once with the Redis bucket:
// both must answer the same way (headers, 429, keys, trusted proxies).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { loadConfigText } from '../../src/config/load.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { assertGatewayError, pollUntil, send, type HttpResult } from '../support/http.ts';
import { deleteKeys, inspectRedis, SHARED_REDIS_URL, uniqueKeyPrefix } from '../support/redis.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstream.ts';
import { limitedConfig, yamlOf, type RateLimitInput } from './support.ts';

const STORES = ['in-memory', 'redis'] as const;

async function sendAll(url: string, requests: readonly Record<string, string>[]): Promise<HttpResult[]> {
  const results: HttpResult[] = [];
  for (const headers of requests) results.push(await send(url, { headers }));
  return results;
}

const statuses = (results: readonly HttpResult[]): number[] => results.map((result) => result.status);

for (const store of STORES) {
  describe(`rate limits with the ${store} bucket`, () => {
    const prefix = uniqueKeyPrefix(`gateway-${store}`);
    let upstream: TestUpstream;
    let inspect: Redis | undefined;
    const gateways: TestGateway[] = [];

    async function gatewayWith(rateLimit: RateLimitInput, trustedProxies: string[] = []): Promise<TestGateway> {
      const redis = store === 'redis' ? { url: SHARED_REDIS_URL, keyPrefix: `${prefix}-${gateways.length}` } : undefined;
      const gateway = await startGateway(yamlOf(limitedConfig(upstream.address, rateLimit, { redis, gateway: { trustedProxies } })));
      gateways.push(gateway);
      return gateway;
    }

    before(async () => {
      upstream = await startUpstream();
      if (store === 'redis') inspect = await inspectRedis(SHARED_REDIS_URL);
    });

    after(async () => {
      for (const gateway of gateways) await gateway.close();
      await upstream.close();
      if (inspect) {
        for (let i = 0; i < gateways.length; i++) await deleteKeys(inspect, `${prefix}-${i}`);
        inspect.disconnect();
      }
    });

    it('sends RateLimit headers on every response and refuses with 429 before contacting the upstream', async () => {
      const gateway = await gatewayWith({ key: 'route', rate: '6/m', burst: 3 });
      const before = upstream.requests.length;
      const results = await sendAll(gateway.url, [{}, {}, {}, {}]);
      assert.deepEqual(statuses(results), [200, 200, 200, 429]);
      assert.equal(upstream.requests.length - before, 3, 'the refused request never reached the upstream');
      for (const result of results) assert.equal(result.headers['ratelimit-policy'], '"app";q=3;w=60');
      // 6/m is one token per 10 s: once the bucket is empty the next token is 10 s away
      assert.deepEqual(
        results.map((result) => result.headers.ratelimit),
        ['"app";r=2;t=0', '"app";r=1;t=0', '"app";r=0;t=10', '"app";r=0;t=10'],
      );

      const refused = results[3]!;
      assertGatewayError(refused, 429, 'rate_limited');
      assert.equal(refused.headers['retry-after'], '10');
      assert.equal(refused.headers['cache-control'], 'no-store');

      const access = await pollUntil(() => {
        const lines = gateway.log.lines.filter((line) => line.msg === 'access');
        return lines.length === 4 ? lines : undefined;
      }, 2000, 'four access lines');
      assert.deepEqual(access.map((line) => line.rateLimited), [false, false, false, true]);
      assert.equal(access[3]!.error, 'rate_limited');

      const unlimited = await send(gateway.url, { path: '/open' });
      assert.equal(unlimited.status, 200);
      assert.equal(unlimited.headers['ratelimit-policy'], undefined, 'a route without rateLimit has no RateLimit headers');
      assert.equal(unlimited.headers.ratelimit, undefined);
    });

    it("sends the instance's own RateLimit policies beside the route's", async () => {
      const gateway = await gatewayWith({ key: 'route', rate: '6/m', burst: 3 });
      upstream.handle((req, res) => {
        req.resume();
        res.writeHead(200, { 'ratelimit-policy': '"daily";q=1000;w=86400', ratelimit: '"daily";r=999;t=3600', 'content-length': 2 });
        res.end('ok');
      });
      try {
        const result = await send(gateway.url);
        assert.equal(result.status, 200);
        // Both are structured-field Lists of named policies: the client learns every limit it is under.
        assert.equal(result.headers['ratelimit-policy'], '"daily";q=1000;w=86400, "app";q=3;w=60');
        assert.equal(result.headers.ratelimit, '"daily";r=999;t=3600, "app";r=2;t=0');
      } finally {
        upstream.handle(echo('upstream'));
      }
    });

    it('gives every value of a header:<name> key its own bucket, and limits requests without it by address', async () => {
      const gateway = await gatewayWith({ key: 'header:X-User-ID', rate: '1/h', burst: 2 });
      const alice = { 'x-user-id': 'alice' };
      const bob = { 'x-user-id': 'bob' };
      const results = await sendAll(gateway.url, [alice, alice, alice, bob, {}, {}, {}, bob]);
      assert.deepEqual(statuses(results), [200, 200, 429, 200, 200, 200, 429, 200]);
      if (inspect) {
        const keys = (await inspect.keys(`${prefix}-${gateways.length - 1}:*`)).sort();
        const keyPrefix = `${prefix}-${gateways.length - 1}`;
        assert.deepEqual(keys, [`${keyPrefix}:{app:h:alice}`, `${keyPrefix}:{app:h:bob}`, `${keyPrefix}:{app:ip:127.0.0.1}`]);
      }
    });

    it('keys `ip` on the client behind a trusted proxy, and on the peer when the peer is not trusted', async () => {
      const behindProxy = await gatewayWith({ key: 'ip', rate: '1/h', burst: 1 }, ['127.0.0.1/32']);
      const client7 = { 'x-forwarded-for': '203.0.113.7' };
      const client8 = { 'x-forwarded-for': '203.0.113.8' };
      // a second trusted proxy appended the address it saw: the client is still 203.0.113.7
      const client7ViaTwoProxies = { 'x-forwarded-for': '203.0.113.7, 127.0.0.1' };
      // the client itself wrote the leftmost entry: only the hop the trusted proxy appended counts
      const spoofing7 = { 'x-forwarded-for': '198.51.100.1, 203.0.113.7' };
      const trusted = await sendAll(behindProxy.url, [client7, client8, client7ViaTwoProxies, spoofing7, {}]);
      assert.deepEqual(statuses(trusted), [200, 200, 429, 429, 200]);

      const direct = await gatewayWith({ key: 'ip', rate: '1/h', burst: 1 });
      const untrusted = await sendAll(direct.url, [client7, client8]);
      assert.deepEqual(statuses(untrusted), [200, 429], 'an untrusted peer cannot pick its bucket with X-Forwarded-For');
    });

    if (store === 'redis') {
      it('a reload to another Redis keeps deciding on the running connection until the new one answers', async (t) => {
        const rateLimit = { key: 'route', rate: '1/h', burst: 5 };
        const [first, second] = [`${prefix}-warm-a`, `${prefix}-warm-b`];
        t.after(async () => {
          for (const keyPrefix of [first, second]) await deleteKeys(inspect!, keyPrefix);
        });
        // `deny`: a decision the new, still connecting client cannot make would be a 503.
        const configWith = (keyPrefix: string) =>
          limitedConfig(upstream.address, rateLimit, { redis: { url: SHARED_REDIS_URL, keyPrefix, onError: 'deny' } });
        const gateway = await startGateway(yamlOf(configWith(first)));
        gateways.push(gateway);
        const remaining = (reply: HttpResult): string | undefined => /;r=(\d+);/.exec(String(reply.headers.ratelimit))?.[1];
        assert.equal(remaining(await send(gateway.url)), '4');

        gateway.gateway.reload(loadConfigText(yamlOf(configWith(second)), 'routes.yaml', {}));
        const during = await send(gateway.url);
        assert.equal(during.status, 200);
        assert.equal(remaining(during), '3', 'the running connection and its bucket decided');

        await gateway.log.waitFor((line) => line.msg === 'config reloaded');
        const after = await send(gateway.url);
        assert.equal(remaining(after), '4', 'the new Redis prefix starts a full bucket');
        assert.equal((await inspect!.keys(`${second}:*`)).length, 1);
      });
    }

    if (store === 'in-memory') {
      it('keeps a bucket across a reload that leaves its policy unchanged, and starts afresh when it changes', async () => {
        const rateLimit = { key: 'route', rate: '1/h', burst: 1 };
        const gateway = await gatewayWith(rateLimit);
        const yaml = yamlOf(limitedConfig(upstream.address, rateLimit));
        assert.deepEqual(statuses(await sendAll(gateway.url, [{}, {}])), [200, 429]);
        gateway.gateway.reload(loadConfigText(yaml, 'routes.yaml', {}));
        assert.equal((await send(gateway.url)).status, 429, 'an unchanged policy keeps its tokens');
        gateway.gateway.reload(loadConfigText(yaml.replace('"burst": 1', '"burst": 2'), 'routes.yaml', {}));
        assert.equal((await send(gateway.url)).status, 200, 'a new policy starts with a full bucket');
      });
    }
  });
}
