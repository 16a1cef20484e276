// `redis.cluster`: bucket keys carry a hash tag, so a bucket's slot depends on its route and key only,
// and the gateway's Cluster client runs the script on the node that owns the slot.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Redis } from 'ioredis';
import { redisBucketKey } from '../../src/ratelimit/redis-bucket.ts';
import { HEALTH_LOG } from '../../src/ratelimit/redis-health.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { send } from '../support/http.ts';
import { inspectRedis, startPrivateRedis, uniqueKeyPrefix, type PrivateRedis } from '../support/redis.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { limitedConfig, yamlOf } from './support.ts';

describe('bucket keys', () => {
  it('are <keyPrefix>:{<route>:<key>}, the route and key inside one hash tag', () => {
    assert.equal(redisBucketKey('zonegate', 'orders', 'h:alice'), 'zonegate:{orders:h:alice}');
    assert.equal(redisBucketKey('zg:eu', 'orders', 'ip:10.0.0.1'), 'zg:eu:{orders:ip:10.0.0.1}');
  });
});

describe('rate limits on a Redis Cluster', () => {
  let cluster: PrivateRedis;
  let inspect: Redis;
  let upstream: TestUpstream;
  let gateway: TestGateway;
  const prefix = uniqueKeyPrefix('cluster');

  const keySlot = async (key: string): Promise<number> => (await inspect.call('CLUSTER', 'KEYSLOT', key)) as number;

  before(async () => {
    cluster = await startPrivateRedis({ cluster: true });
    inspect = await inspectRedis(cluster.url);
    upstream = await startUpstream();
    const config = limitedConfig(upstream.address, { key: 'header:X-User-ID', rate: '1/h', burst: 2 }, {
      redis: { cluster: [cluster.url], keyPrefix: prefix },
    });
    gateway = await startGateway(yamlOf(config));
  });

  after(async () => {
    await gateway.close();
    await upstream.close();
    inspect.disconnect();
    await cluster.stop();
  });

  it('puts a bucket in the slot of its hash tag, whatever the prefix', async () => {
    const tagSlot = await keySlot('orders:h:alice');
    assert.equal(await keySlot(redisBucketKey(prefix, 'orders', 'h:alice')), tagSlot);
    assert.equal(await keySlot(redisBucketKey('another-prefix', 'orders', 'h:alice')), tagSlot);
    assert.notEqual(await keySlot(redisBucketKey(prefix, 'orders', 'h:bob')), tagSlot, 'other keys spread over other slots');
  });

  it('decides through the Cluster client', async () => {
    assert.deepEqual(gateway.log.lines.filter((line) => String(line.msg).startsWith('rate limits:')).map((line) => line.msg), [HEALTH_LOG.ready]);
    const alice = { 'x-user-id': 'alice' };
    const results = [await send(gateway.url, { headers: alice }), await send(gateway.url, { headers: alice }), await send(gateway.url, { headers: alice })];
    assert.deepEqual(results.map((result) => result.status), [200, 200, 429]);
    assert.deepEqual(results.map((result) => result.headers.ratelimit?.toString().split(';')[1]), ['r=1', 'r=0', 'r=0']);
    const tokens = Number(await inspect.hget(redisBucketKey(prefix, 'app', 'h:alice'), 'tk'));
    assert.ok(tokens >= 0 && tokens < 0.01, `the cluster holds the bucket (${tokens} tokens)`);
  });
});
