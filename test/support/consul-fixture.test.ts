// The Consul fixture is only useful if it behaves like Consul for the real client, so these tests
// drive it with the `consul` package the gateway uses, over real sockets.
import { describe, it, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import Consul from 'consul';
import { startConsulFixture, type ConsulFixture, type HealthServiceEntryJson } from './consul-fixture.ts';
import { blockingQueryTimeout, parseGoDuration } from './consul-fixture/duration.ts';
import { meterStalls } from './http.ts';
import { startUpstream } from './upstream.ts';

interface HealthQuery {
  service: string;
  dc?: string;
  index?: string;
  wait?: string;
  passing?: boolean;
  stale?: boolean;
  timeout?: number;
}

interface HealthAnswer {
  entries: HealthServiceEntryJson[];
  index: number;
  res: IncomingMessage;
}

/** health.service with the response included, which is how a watcher reads X-Consul-Index. */
async function health(consul: Consul, query: HealthQuery): Promise<HealthAnswer> {
  // papi only hands back the response when ctx is an EventEmitter flagged includeResponse
  const options = { ...query, ctx: Object.assign(new EventEmitter(), { includeResponse: true }) };
  const [res, body] = (await consul.health.service(options)) as [IncomingMessage, HealthServiceEntryJson[]];
  return { entries: body, index: Number(res.headers['x-consul-index']), res };
}

async function elapsedMs<T>(work: Promise<T>): Promise<[T, number]> {
  const started = performance.now();
  const value = await work;
  return [value, performance.now() - started];
}

describe('Consul fixture, driven by the consul client', () => {
  let fixture: ConsulFixture;
  let consul: Consul;

  beforeEach(async () => {
    fixture = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    consul = new Consul({ host: fixture.host, port: fixture.port });
  });

  afterEach(async () => {
    consul.destroy();
    await fixture.close();
  });

  describe('health queries', () => {
    it('answers [] for an unknown service, with a non-zero index and the leader headers', async () => {
      const { entries, index, res } = await health(consul, { service: 'nobody' });
      assert.deepEqual(entries, []);
      assert.ok(index >= 1, `index ${index} must be at least 1`);
      assert.equal(res.headers['x-consul-knownleader'], 'true');
      assert.equal(res.headers['x-consul-lastcontact'], '0');
      assert.match(res.headers['content-type'] ?? '', /^application\/json/);
    });

    it('returns a blocking query as soon as the service changes, with a higher index', async () => {
      fixture.register('dc1', { service: 'orders', port: 9001, zone: 'sh-a' });
      const first = await health(consul, { service: 'orders' });

      const blocked = elapsedMs(health(consul, { service: 'orders', index: String(first.index), wait: '5s' }));
      await fixture.waitForBlocking(1);
      fixture.register('dc1', { service: 'orders', port: 9002, zone: 'sh-b' });
      const [second, took] = await blocked;

      assert.ok(second.index > first.index, `${second.index} should exceed ${first.index}`);
      assert.equal(second.entries.length, 2);
      assert.ok(took < 1_000, `returned after ${took}ms, well before the 5s wait`);
      assert.equal(fixture.pendingBlocking(), 0);
    });

    it('holds a blocking query for wait (plus at most wait/16) when nothing changes', async () => {
      fixture.register('dc1', { service: 'orders', port: 9001 });
      const { index } = await health(consul, { service: 'orders' });
      const stalls = meterStalls();
      const [answer, took] = await elapsedMs(health(consul, { service: 'orders', index: String(index), wait: '300ms' }));
      const stalledMs = stalls.stop();
      assert.equal(answer.index, index);
      assert.ok(took >= 295, `returned after ${took}ms, before the 300ms wait`);
      assert.ok(took < 300 * (17 / 16) + 150 + stalledMs, `returned after ${took}ms, too long after the wait (stalled ${stalledMs.toFixed(0)} ms)`);
    });

    it('does not wake a blocking query when a different service changes', async () => {
      fixture.register('dc1', { service: 'orders', port: 9001 });
      const { index } = await health(consul, { service: 'orders' });
      const blocked = health(consul, { service: 'orders', index: String(index), wait: '5s' });
      await fixture.waitForBlocking(1);

      fixture.register('dc1', { service: 'payments', port: 9100 });
      assert.equal(fixture.pendingBlocking(), 1, 'a payments change must not answer an orders query');
      assert.equal(fixture.indexOf('orders'), index);

      fixture.setCheck('dc1', `service:orders-127.0.0.1-9001`, 'critical');
      const answer = await blocked;
      assert.ok(answer.index > index);
      assert.equal(answer.entries[0]?.Checks.find((check) => check.ServiceID !== '')?.Status, 'critical');
    });

    it('with passing, keeps only entries whose checks (serfHealth included) all pass', async () => {
      fixture.register('dc1', { service: 'orders', id: 'ok', port: 9001 });
      fixture.register('dc1', { service: 'orders', id: 'warn', port: 9002, status: 'warning' });
      fixture.register('dc1', { service: 'orders', id: 'dead-node', port: 9003, node: 'node-2' });
      fixture.setCheck('dc1', 'serfHealth', 'critical', { node: 'node-2' });

      const all = await health(consul, { service: 'orders' });
      const passing = await health(consul, { service: 'orders', passing: true });
      assert.deepEqual(all.entries.map((entry) => entry.Service.ID).sort(), ['dead-node', 'ok', 'warn']);
      assert.deepEqual(passing.entries.map((entry) => entry.Service.ID), ['ok']);
      assert.equal(passing.index, all.index);
    });

    it('keeps datacenters apart, each with its own index, and rejects an unknown one like Consul', async () => {
      fixture.register('dc2', { service: 'orders', port: 9001, zone: 'bj-a' });
      fixture.register('dc2', { service: 'orders', port: 9002, zone: 'bj-c' });

      const local = await health(consul, { service: 'orders' });
      const remote = await health(consul, { service: 'orders', dc: 'dc2' });
      assert.deepEqual(local.entries, []);
      assert.equal(local.index, 1, 'dc1 saw no write');
      assert.equal(remote.entries.length, 2);
      assert.ok(remote.entries.every((entry) => entry.Node.Datacenter === 'dc2'));
      assert.ok(remote.index > local.index);

      await assert.rejects(health(consul, { service: 'orders', dc: 'dc9' }), (error: Error & { statusCode?: number }) => {
        assert.equal(error.statusCode, 500);
        assert.match(error.message, /No path to datacenter/);
        return true;
      });
    });

    it('looks services up case-insensitively and answers stale and consistent reads', async () => {
      fixture.register('dc1', { service: 'Orders', port: 9001 });
      const stale = await health(consul, { service: 'orders', stale: true });
      assert.equal(stale.entries.length, 1);
      assert.equal(stale.res.headers['x-consul-effective-consistency'], 'stale');
    });

    it('rejects a wait without a unit and a non-numeric index with 400, like Consul', async () => {
      await assert.rejects(health(consul, { service: 'orders', index: '1', wait: '10' }), /Invalid wait time/);
      await assert.rejects(health(consul, { service: 'orders', index: 'abc' }), /Invalid index/);
    });

    it('does not move the index for a write that changes nothing', async () => {
      const { checkIds } = fixture.register('dc1', { service: 'orders', port: 9001 });
      const before = fixture.indexOf('orders');
      fixture.setCheck('dc1', checkIds[0] ?? '', 'passing');
      fixture.register('dc1', { service: 'orders', port: 9001 });
      assert.equal(fixture.indexOf('orders'), before);
      assert.throws(() => fixture.setCheck('dc1', 'no-such-check', 'passing'), /no check "no-such-check"/);
    });

    it('logs every request with its query, so a busy-looping watcher shows', async () => {
      await health(consul, { service: 'orders', index: '1', wait: '50ms', passing: true });
      const logged = await fixture.waitForRequest((request) => request.path === '/v1/health/service/orders');
      assert.equal(logged.method, 'GET');
      assert.deepEqual(logged.query, { index: '1', wait: '50ms', passing: 'true' });
      assert.equal(fixture.requests.length, 1);
    });
  });

  describe('faults', () => {
    it('status500 makes every request fail until it is turned off', async () => {
      fixture.faults.status500(true);
      await assert.rejects(health(consul, { service: 'orders' }), (error: Error & { statusCode?: number }) => error.statusCode === 500);
      fixture.faults.status500(false);
      assert.deepEqual((await health(consul, { service: 'orders' })).entries, []);
    });

    it('refuse drops parked queries and refuses connections; accept serves again on the same port', async () => {
      const parked = health(consul, { service: 'orders', index: '1', wait: '5s' });
      await fixture.waitForBlocking(1);
      const port = fixture.port;

      await fixture.faults.refuse();
      await assert.rejects(parked, /socket hang up|ECONNRESET/);
      assert.equal(fixture.pendingBlocking(), 0);
      await assert.rejects(health(consul, { service: 'orders' }), { code: 'ECONNREFUSED' });

      await fixture.faults.accept();
      assert.equal(fixture.port, port);
      assert.deepEqual((await health(consul, { service: 'orders' })).entries, []);
    });

    it('hang accepts requests and never answers them', async () => {
      fixture.faults.hang(true);
      await assert.rejects(health(consul, { service: 'orders', timeout: 150 }), /timed out/);
      assert.equal(fixture.requests.length, 1, 'the hung request did reach the fixture');
      fixture.faults.hang(false);
      assert.deepEqual((await health(consul, { service: 'orders' })).entries, []);
    });

    it('resetIndex makes the next index lower and returns parked queries at once', async () => {
      for (const port of [9001, 9002, 9003]) fixture.register('dc1', { service: 'orders', port });
      const { index } = await health(consul, { service: 'orders' });
      const parked = health(consul, { service: 'orders', index: String(index), wait: '5s' });
      await fixture.waitForBlocking(1);

      fixture.faults.resetIndex(2);
      const answer = await parked;
      assert.equal(answer.index, 2);
      assert.ok(answer.index < index);
      assert.equal(answer.entries.length, 3, 'a restore keeps the data');
      assert.equal(fixture.indexOf('orders', 'dc2'), 2);
    });

    it('indexHeader zero reports index 0 and holds a query on index 1 for its wait; missing drops the header', async () => {
      fixture.faults.indexHeader('zero');
      assert.equal((await health(consul, { service: 'orders' })).res.headers['x-consul-index'], '0');
      const [held, took] = await elapsedMs(health(consul, { service: 'orders', index: '1', wait: '200ms' }));
      assert.equal(held.index, 0);
      assert.ok(took >= 195, `returned after ${took}ms, before its wait`);
      fixture.faults.indexHeader('missing');
      assert.equal((await health(consul, { service: 'orders' })).res.headers['x-consul-index'], undefined);
    });

    it('holdDatacenter keeps one datacenter unanswered until released, then answers as if asked just now', async () => {
      fixture.register('dc2', { service: 'orders', port: 9001 });
      const release = fixture.faults.holdDatacenter('dc2');
      let settled = false;
      const held = health(consul, { service: 'orders', dc: 'dc2' }).finally(() => (settled = true));
      assert.deepEqual((await health(consul, { service: 'orders', dc: 'dc1' })).entries, [], 'dc1 answers');
      await fixture.waitForRequest((r) => r.query.dc === 'dc2');
      assert.equal(settled, false);
      release();
      assert.equal((await held).entries.length, 1);
      assert.equal((await health(consul, { service: 'orders', dc: 'dc2' })).entries.length, 1, 'released for good');
    });

    it('rewriteAnswers replaces health answers (a string is the raw body) until turned off', async () => {
      fixture.register('dc1', { service: 'orders', port: 9001 });
      fixture.faults.rewriteAnswers((entries) => entries.map((entry) => ({ ...entry, Checks: null })));
      assert.equal((await health(consul, { service: 'orders' })).entries[0]!.Checks, null);
      fixture.faults.rewriteAnswers(() => '[{"Node":');
      await assert.rejects(health(consul, { service: 'orders' }), /decode \(application\/json\) failed/);
      fixture.faults.rewriteAnswers(undefined);
      assert.equal((await health(consul, { service: 'orders' })).entries[0]!.Checks.length, 2);
    });

    it('resetMidBody cuts the next answers after half their body', async () => {
      fixture.register('dc1', { service: 'orders', port: 9001 });
      fixture.faults.resetMidBody(1);
      await assert.rejects(health(consul, { service: 'orders' }), /ECONNRESET/);
      assert.equal((await health(consul, { service: 'orders' })).entries.length, 1, 'only the next one');
    });

    it('tagged addresses: the service keeps its TaggedAddresses, the node reports its WAN address', async () => {
      fixture.register('dc2', {
        service: 'orders',
        port: 8080,
        address: '10.1.0.5',
        nodeAddress: '10.1.0.1',
        nodeWanAddress: '198.51.100.1',
        taggedAddresses: { wan: { Address: '198.51.100.5', Port: 18080 } },
      });
      fixture.register('dc2', { service: 'orders', node: 'plain', port: 8081, nodeAddress: '10.1.0.2' });
      const [tagged, plain] = (await health(consul, { service: 'orders', dc: 'dc2' })).entries;
      assert.deepEqual(tagged!.Service.TaggedAddresses, { wan: { Address: '198.51.100.5', Port: 18080 } });
      assert.deepEqual(tagged!.Node.TaggedAddresses, { lan: '10.1.0.1', lan_ipv4: '10.1.0.1', wan: '198.51.100.1', wan_ipv4: '198.51.100.1' });
      assert.equal('TaggedAddresses' in plain!.Service, false, 'omitted when empty, as Consul does');
      assert.equal(plain!.Node.TaggedAddresses['wan'], '10.1.0.2');
    });

    it('close ends parked queries promptly', async () => {
      const parked = health(consul, { service: 'orders', index: '1', wait: '5m' });
      await fixture.waitForBlocking(1);
      const [, took] = await elapsedMs(fixture.close());
      await assert.rejects(parked);
      assert.ok(took < 500, `close took ${took}ms`);
    });
  });

  describe('agent endpoints', () => {
    it('registers a service with the documented entry shape and a critical service:<id> TTL check', async () => {
      await consul.agent.service.register({
        name: 'orders',
        id: 'orders-1',
        address: '10.0.0.7',
        port: 8080,
        tags: ['v2'],
        meta: { zone: 'sh-a' },
        check: { name: 'orders ttl', ttl: '10s', timeout: '1s' },
      });
      const [entry] = (await health(consul, { service: 'orders' })).entries;
      assert.ok(entry);
      assert.equal(entry.Node.Node, fixture.agentNode);
      assert.equal(entry.Node.Datacenter, 'dc1');
      assert.equal(typeof entry.Node.ID, 'string');
      assert.deepEqual(entry.Node.Meta, { 'consul-network-segment': '' });
      assert.equal(entry.Node.TaggedAddresses['lan'], entry.Node.Address);
      const { CreateIndex, ModifyIndex, ...service } = entry.Service;
      assert.ok(CreateIndex >= 1 && ModifyIndex >= CreateIndex);
      assert.deepEqual(service, {
        ID: 'orders-1',
        Service: 'orders',
        Tags: ['v2'],
        Address: '10.0.0.7',
        Meta: { zone: 'sh-a' },
        Port: 8080,
        Weights: { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
      });
      assert.deepEqual(
        entry.Checks.map(({ CheckID, Name, Status, ServiceID, ServiceName, ServiceTags, Type }) => ({
          CheckID, Name, Status, ServiceID, ServiceName, ServiceTags, Type,
        })),
        [
          { CheckID: 'serfHealth', Name: 'Serf Health Status', Status: 'passing', ServiceID: '', ServiceName: '', ServiceTags: [], Type: '' },
          { CheckID: 'service:orders-1', Name: 'orders ttl', Status: 'critical', ServiceID: 'orders-1', ServiceName: 'orders', ServiceTags: ['v2'], Type: 'ttl' },
        ],
      );
    });

    it('numbers several checks service:<id>:<n>, honours a given Status and names unnamed checks like Consul', async () => {
      await consul.agent.service.register({
        name: 'orders',
        port: 8080,
        checks: [
          { name: 'heartbeat', ttl: '10s', timeout: '1s', status: 'passing' },
          { name: 'probe', http: 'http://127.0.0.1:1/health', interval: '10s', timeout: '1s' },
        ],
      });
      fixture.register('dc1', { service: 'orders', id: 'orders-2', port: 8081, checks: [{}] });
      const entries = (await health(consul, { service: 'orders' })).entries;
      const serviceChecks = entries.flatMap((entry) => entry.Checks.filter((check) => check.ServiceID !== ''));
      assert.deepEqual(serviceChecks.map((check) => [check.CheckID, check.Status, check.Name]), [
        ['service:orders:1', 'passing', 'heartbeat'],
        ['service:orders:2', 'critical', 'probe'],
        ['service:orders-2', 'passing', "Service 'orders' check"],
      ]);
    });

    it('updates TTL checks with pass/warn/fail and their note, and deregisters', async () => {
      await consul.agent.service.register({ name: 'orders', id: 'orders-1', port: 8080, check: { name: 'heartbeat', ttl: '10s', timeout: '1s' } });
      const checkStatus = async (): Promise<[string | undefined, string | undefined]> => {
        const check = (await health(consul, { service: 'orders' })).entries[0]?.Checks.find((c) => c.CheckID === 'service:orders-1');
        return [check?.Status, check?.Output];
      };

      await consul.agent.check.pass({ id: 'service:orders-1', note: 'all good' });
      assert.deepEqual(await checkStatus(), ['passing', 'all good']);
      await consul.agent.check.warn('service:orders-1');
      assert.deepEqual(await checkStatus(), ['warning', '']);
      await consul.agent.check.fail({ id: 'service:orders-1', note: 'db down' });
      assert.deepEqual(await checkStatus(), ['critical', 'db down']);

      await consul.agent.service.deregister('orders-1');
      assert.deepEqual((await health(consul, { service: 'orders' })).entries, []);
    });

    it('stores Weights like the agent: none → 1/1, a missing field → 0, and refuses Passing < 1 or Warning < 0', async () => {
      // the client drops Weights from a registration, so these go over plain HTTP
      const register = (body: object): Promise<Response> =>
        fetch(`${fixture.address}/v1/agent/service/register`, { method: 'PUT', body: JSON.stringify({ Name: 'orders', Port: 8080, ...body }) });
      const weightsOf = async (id: string): Promise<unknown> =>
        (await health(consul, { service: 'orders' })).entries.find((entry) => entry.Service.ID === id)?.Service.Weights;
      assert.equal((await register({ ID: 'none' })).status, 200);
      assert.equal((await register({ ID: 'no-warning', Weights: { Passing: 3 } })).status, 200);
      assert.deepEqual(await weightsOf('none'), { Passing: 1, Warning: 1 });
      assert.deepEqual(await weightsOf('no-warning'), { Passing: 3, Warning: 0 });
      for (const [weights, reason] of [
        [{ Passing: 0, Warning: 1 }, 'Invalid Weights: Passing must be greater than 0'],
        [{ Warning: 1 }, 'Invalid Weights: Passing must be greater than 0'],
        [{ Passing: 1, Warning: -1 }, 'Invalid Weights: Warning must be greater or equal than 0'],
      ] as const) {
        const res = await register({ ID: 'bad', Weights: weights });
        assert.deepEqual([res.status, await res.text()], [400, reason]);
      }
      assert.equal(await weightsOf('bad'), undefined);
      assert.throws(() => fixture.register('dc1', { service: 'orders', port: 1, weights: { passing: 0, warning: 1 } }), /Passing must be greater than 0/);
    });

    it("answers unknown IDs and invalid checks with Consul's status codes", async () => {
      await assert.rejects(consul.agent.service.deregister('ghost'), { statusCode: 404 });
      await assert.rejects(consul.agent.check.pass('ghost'), { statusCode: 404 });
      await consul.agent.service.register({ name: 'orders', port: 8080, check: { name: 'probe', http: 'http://127.0.0.1:1/', interval: '10s', timeout: '1s' } });
      await assert.rejects(consul.agent.check.pass('service:orders'), (error: Error & { statusCode?: number }) => {
        assert.equal(error.statusCode, 500);
        assert.match(error.message, /does not have associated TTL/);
        return true;
      });
      const invalidStatus = { name: 'orders', port: 8080, check: { name: 'heartbeat', ttl: '10s', timeout: '1s', status: 'fine' } };
      await assert.rejects(consul.agent.service.register(invalidStatus), { statusCode: 400 });
    });

    it('runHttpChecks sets each HTTP check from its endpoint: 2xx passing, 429 warning, else critical', async () => {
      const upstream = await startUpstream('orders', (req, res) => {
        res.writeHead(Number(req.url?.slice(1)));
        res.end('from upstream');
      });
      try {
        for (const code of [200, 429, 503]) {
          await consul.agent.service.register({
            name: 'orders',
            id: `orders-${code}`,
            port: upstream.port,
            check: { name: 'probe', http: `http://${upstream.address}/${code}`, interval: '10s', timeout: '1s' },
          });
        }
        await fixture.runHttpChecks();
        const entries = (await health(consul, { service: 'orders' })).entries;
        const statusOf = (id: string): string | undefined => entries.find((e) => e.Service.ID === id)?.Checks[1]?.Status;
        assert.deepEqual(['orders-200', 'orders-429', 'orders-503'].map(statusOf), ['passing', 'warning', 'critical']);
        assert.match(entries[0]?.Checks[1]?.Output ?? '', /200 OK Output: from upstream/);
      } finally {
        await upstream.close();
      }
    });
  });
});

describe('Consul wait durations', () => {
  it("parses Go durations and refuses what Go's time.ParseDuration refuses", () => {
    assert.equal(parseGoDuration('10s'), 10_000);
    assert.equal(parseGoDuration('5m'), 300_000);
    assert.equal(parseGoDuration('100ms'), 100);
    assert.equal(parseGoDuration('1m30s'), 90_000);
    assert.equal(parseGoDuration('1.5s'), 1_500);
    assert.equal(parseGoDuration('0'), 0);
    assert.equal(parseGoDuration('10'), undefined);
    assert.equal(parseGoDuration('s'), undefined);
    assert.equal(parseGoDuration('10x'), undefined);
  });

  it('defaults to 5m, caps at 10m and adds at most 1/16 jitter', () => {
    const within = (value: number, base: number): boolean => value >= base && value <= base * (17 / 16);
    for (let i = 0; i < 50; i++) {
      assert.ok(within(blockingQueryTimeout(undefined), 300_000));
      assert.ok(within(blockingQueryTimeout(0), 300_000));
      assert.ok(within(blockingQueryTimeout(3_600_000), 600_000));
      assert.ok(within(blockingQueryTimeout(1_000), 1_000));
    }
  });
});
