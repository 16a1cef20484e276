// Consul discovery end to end: the real `consul` client in the gateway against the Consul API fixture,
// real loopback upstreams, requests through the gateway.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, afterEach, before, describe, test } from 'node:test';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { gatewayYaml, servedBy } from '../support/consul-fixture-gateway.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const run = promisify(execFile);

/** Polls until `check` returns a value (not undefined), or fails after the deadline. */
async function eventually<T>(check: () => Promise<T | undefined> | T | undefined, deadlineMs = 3000): Promise<T> {
  const until = performance.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (performance.now() > until) throw new Error(`condition not met within ${deadlineMs} ms`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe('consul discovery', { timeout: 30_000 }, () => {
  const upstreams: TestUpstream[] = [];
  let consul: ConsulFixture;
  let gw: TestGateway | undefined;

  before(async () => {
    for (const name of ['a1', 'a2', 'a3', 'b1', 'j1']) upstreams.push(await startUpstream(name));
  });
  after(async () => {
    await Promise.all(upstreams.map((u) => u.close()));
  });
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await consul.close();
  });

  function register(name: string, zone: string, dc = 'dc1'): string {
    const upstream = upstreams[['a1', 'a2', 'a3', 'b1', 'j1'].indexOf(name)]!;
    return consul.register(dc, { service: 'orders', id: name, port: upstream.port, address: '127.0.0.1', zone }).id;
  }

  test('an instance turned critical stops receiving traffic within 1 s, through blocking queries', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1', 'sh-a');
    register('a2', 'sh-a');
    gw = await startGateway(gatewayYaml(consul));
    await eventually(async () => ((await fetch(`${gw!.adminUrl}/readyz`)).status === 200 ? true : undefined));
    const before = new Set<string | null>();
    for (let i = 0; i < 20; i++) before.add((await servedBy(gw)).upstream);
    assert.deepEqual([...before].sort(), ['consul-fixture/a1@dc1', 'consul-fixture/a2@dc1']);

    await consul.waitForBlocking(2);
    const queriesBefore = consul.requests.length;
    const failedAt = performance.now();
    consul.setCheck('dc1', 'service:a2', 'critical');
    await eventually(async () => {
      const results = await Promise.all(Array.from({ length: 10 }, () => servedBy(gw!)));
      return results.every((r) => r.upstream === 'consul-fixture/a1@dc1') ? true : undefined;
    });
    assert.ok(performance.now() - failedAt < 1000, 'traffic moved off the critical instance within 1 s');
    // one answer per watch (dc1 woke up), not a polling loop
    assert.ok(consul.requests.length - queriesBefore <= 4, `${consul.requests.length - queriesBefore} queries`);
  });

  test('the zone tier falls through under the threshold and comes back with health', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1', 'sh-a');
    register('a2', 'sh-a');
    register('a3', 'sh-a');
    register('b1', 'sh-b');
    gw = await startGateway(gatewayYaml(consul));
    await eventually(async () => ((await servedBy(gw!)).status === 200 ? true : undefined));
    consul.setCheck('dc1', 'service:a1', 'critical');
    consul.setCheck('dc1', 'service:a2', 'critical');
    await eventually(async () => ((await servedBy(gw!)).upstream === 'consul-fixture/b1@dc1' ? true : undefined));
    consul.setCheck('dc1', 'service:a2', 'passing');
    const back = await eventually(async () => {
      const { upstream } = await servedBy(gw!);
      return upstream !== 'consul-fixture/b1@dc1' ? upstream : undefined;
    });
    assert.match(back!, /^consul-fixture\/a[23]@dc1$/);
  });

  test('instances of two datacenters are merged into one snapshot', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1', 'sh-a', 'dc1');
    register('j1', 'bj-a', 'dc2');
    gw = await startGateway(gatewayYaml(consul));
    const snapshot = await eventually(() => {
      const s = gw!.gateway.registry.snapshot('orders');
      return s && s.instances.length === 2 ? s : undefined;
    });
    assert.deepEqual(snapshot.instances.map((i) => `${i.id} ${i.zone} ${i.datacenter}`), ['consul-fixture/a1@dc1 sh-a dc1', 'consul-fixture/j1@dc2 bj-a dc2']);
    assert.equal((await servedBy(gw, 'bj-a')).upstream, 'consul-fixture/j1@dc2');
    assert.equal((await servedBy(gw, 'sh-a')).upstream, 'consul-fixture/a1@dc1');
  });

  test('one service ID registered on two nodes is two instances (IDs are unique per agent only)', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    // Agents default a service's ID to its name, so every node's "orders" has the ID "orders".
    for (const [node, upstream] of [['node-1', upstreams[0]!], ['node-2', upstreams[1]!]] as const) {
      consul.register('dc1', { service: 'orders', id: 'orders', node, port: upstream.port, address: '127.0.0.1', zone: 'sh-a' });
    }
    gw = await startGateway(gatewayYaml(consul));
    const snapshot = await eventually(() => gw!.gateway.registry.snapshot('orders'));
    assert.deepEqual(snapshot.instances.map((i) => i.id).sort(), ['node-1/orders@dc1', 'node-2/orders@dc1']);
    const served = new Set<string | null>();
    await eventually(async () => {
      served.add((await servedBy(gw!)).upstream);
      return served.size === 2 ? true : undefined;
    });
  });

  test('Consul down for a long stretch: no failed request, updates resume when it returns', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1', 'sh-a');
    gw = await startGateway(gatewayYaml(consul));
    await eventually(async () => ((await servedBy(gw!)).status === 200 ? true : undefined));
    await consul.faults.refuse();
    await gw.log.waitFor((line) => line.msg === 'consul query failed; serving the last known snapshot');
    const statuses: number[] = [];
    const until = performance.now() + 1500;
    while (performance.now() < until) statuses.push((await servedBy(gw)).status);
    assert.ok(statuses.length > 50);
    assert.deepEqual(new Set(statuses), new Set([200]));

    await consul.faults.accept();
    register('a2', 'sh-a');
    await eventually(async () => ((await servedBy(gw!)).upstream === 'consul-fixture/a2@dc1' ? true : undefined), 10_000);
    await gw.log.waitFor((line) => line.msg === 'consul reachable again');
    // the outage was logged once per watch, not once per retry
    const warnings = gw.log.lines.filter((line) => line.msg === 'consul query failed; serving the last known snapshot');
    assert.ok(warnings.length <= 2, `${warnings.length} warnings`);
  });

  test('an index that goes backwards restarts the watch and later changes still arrive', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1', 'sh-a');
    gw = await startGateway(gatewayYaml(consul));
    await eventually(async () => ((await servedBy(gw!)).status === 200 ? true : undefined));
    await consul.waitForBlocking(2);
    consul.faults.resetIndex(1);
    await consul.waitForRequest((r) => r.path === '/v1/health/service/orders' && r.query.index === undefined && r.query.dc === 'dc1');
    register('a2', 'sh-a');
    await eventually(() => (gw!.gateway.registry.snapshot('orders')?.instances.length === 2 ? true : undefined));
  });

  test('an X-Consul-Index of 0 is read as 1: the watch blocks instead of polling', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    consul.faults.indexHeader('zero');
    register('a1', 'sh-a');
    gw = await startGateway(gatewayYaml(consul));
    await eventually(async () => ((await fetch(`${gw!.adminUrl}/readyz`)).status === 200 ? true : undefined));
    await consul.waitForBlocking(2);
    const parked = consul.requests.slice(-2).map((r) => [r.query.dc, r.query.index]);
    assert.deepEqual(parked.sort(), [['dc1', '1'], ['dc2', '1']]);
    const queriesBefore = consul.requests.length;
    // a measurement window: a polling watch would send about ten queries per datacenter in it
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(consul.requests.length - queriesBefore, 0, 'no query while both watches are parked');
    assert.equal(consul.pendingBlocking(), 2);
  });

  test('answers without X-Consul-Index are polled every few seconds, with a warning, not in a loop', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    consul.faults.indexHeader('missing');
    register('a1', 'sh-a'); // the server's index is past 1, so a query with index 1 returns at once
    gw = await startGateway(gatewayYaml(consul));
    await eventually(async () => ((await fetch(`${gw!.adminUrl}/readyz`)).status === 200 ? true : undefined));
    await gw.log.waitFor((line) => String(line.msg).startsWith('consul answered without X-Consul-Index'));
    const queriesBefore = consul.requests.length;
    // a measurement window: a watch re-querying at once would send about ten queries per datacenter in it
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(consul.requests.length - queriesBefore, 0, 'no query in the window');
  });

  test('with acceptWarning, a warning instance gets Weights.Warning, and a Warning weight of 0 gets no traffic', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    const upstream = (name: string): number => upstreams[['a1', 'a2', 'a3', 'b1', 'j1'].indexOf(name)]!.port;
    const add = (id: string, status: 'passing' | 'warning', warning: number): void =>
      void consul.register('dc1', { service: 'orders', id, port: upstream(id), address: '127.0.0.1', zone: 'sh-a', status, weights: { passing: 5, warning } });
    add('a1', 'passing', 2);
    add('a2', 'warning', 2);
    add('a3', 'warning', 0);
    gw = await startGateway(gatewayYaml(consul, ', acceptWarning: true'));
    const snapshot = await eventually(() => {
      const s = gw!.gateway.registry.snapshot('orders');
      return s && s.instances.length === 3 ? s : undefined;
    });
    assert.deepEqual(
      snapshot.instances.map((i) => [i.id, i.healthy, i.healthy ? i.weight : 'no traffic']),
      [['consul-fixture/a1@dc1', true, 5], ['consul-fixture/a2@dc1', true, 2], ['consul-fixture/a3@dc1', false, 'no traffic']],
    );
    const served = await Promise.all(Array.from({ length: 30 }, () => servedBy(gw!)));
    assert.deepEqual(served.filter((r) => r.status !== 200 || r.upstream === 'consul-fixture/a3@dc1'), []);
  });

  test('flap guard: a mass removal is held for one confirmation round', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    for (const name of ['a1', 'a2', 'a3', 'b1']) register(name, name === 'b1' ? 'sh-b' : 'sh-a');
    gw = await startGateway(gatewayYaml(consul));
    await eventually(() => (gw!.gateway.registry.snapshot('orders')?.healthy.length === 4 ? true : undefined));
    await consul.waitForBlocking(2);
    // Park the watcher outside Consul so the three failures arrive in one answer.
    await consul.faults.refuse();
    for (const name of ['a1', 'a2', 'a3']) consul.setCheck('dc1', `service:${name}`, 'critical');
    await consul.faults.accept();
    await gw.log.waitFor((line) => String(line.msg).includes('holding it for one confirmation round'));
    assert.equal(gw.gateway.registry.snapshot('orders')!.healthy.length, 4, 'held, not applied');
    await eventually(() => (gw!.gateway.registry.snapshot('orders')!.healthy.length === 1 ? true : undefined), 10_000);
  });

  test('a restart during a Consul outage serves from the snapshot file', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-snapshot-'));
    const file = join(dir, 'snapshot.json');
    try {
      register('a1', 'sh-a');
      const first = await startGateway(gatewayYaml(consul, `, snapshotFile: ${file}`));
      await eventually(() => (existsSync(file) ? true : undefined), 5000);
      await first.close();
      assert.ok(JSON.parse(readFileSync(file, 'utf8')).orders.length === 1);

      await consul.faults.refuse();
      gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${file}, initialFetchTimeout: 300ms`));
      await eventually(async () => ((await fetch(`${gw!.adminUrl}/readyz`)).status === 200 ? true : undefined), 5000);
      assert.deepEqual(await servedBy(gw), { status: 200, upstream: 'consul-fixture/a1@dc1' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('the snapshot file keeps discovery health, not breaker ejections: a restart in an outage serves the instance', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-snapshot-'));
    const file = join(dir, 'snapshot.json');
    const persisted = (): { id: string; healthy: boolean }[] | undefined => (existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')).orders : undefined);
    try {
      register('a1', 'sh-a');
      const first = await startGateway(gatewayYaml(consul, `, snapshotFile: ${file}`));
      await eventually(() => first.gateway.registry.snapshot('orders'));
      // what an open breaker does; the next discovery change is then written out with the ejection in force
      first.gateway.registry.setEjected('orders', 'consul-fixture/a1@dc1', true);
      register('a2', 'sh-a');
      const written = await eventually(() => (persisted()?.length === 2 ? persisted() : undefined), 5000);
      await first.close();
      assert.deepEqual(written.map((i) => [i.id, i.healthy]), [['consul-fixture/a1@dc1', true], ['consul-fixture/a2@dc1', true]]);

      await consul.faults.refuse();
      gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${file}, initialFetchTimeout: 300ms`));
      const snapshot = await eventually(() => gw!.gateway.registry.snapshot('orders'), 5000);
      assert.deepEqual(snapshot.healthy.map((i) => i.id), ['consul-fixture/a1@dc1', 'consul-fixture/a2@dc1']);
      const served = new Set<string | null>();
      await eventually(async () => {
        served.add((await servedBy(gw!)).upstream);
        return served.has('consul-fixture/a1@dc1') ? true : undefined;
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('a snapshot file from an earlier version, with ejections baked in, readmits the ejected instance', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    await consul.faults.refuse();
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-snapshot-'));
    const file = join(dir, 'snapshot.json');
    try {
      const a1 = upstreams[0]!;
      const instance = { id: 'n/a1@dc1', service: 'orders', host: '127.0.0.1', port: a1.port, zone: 'sh-a', weight: 1, tags: [], meta: {}, datacenter: 'dc1' };
      const legacy = [
        { ...instance, healthy: false, ejected: true, origin: `http://127.0.0.1:${a1.port}`, address: `127.0.0.1:${a1.port}`, city: 'shanghai', region: 'cn-east' },
        { ...instance, id: 'n/a2@dc1', port: upstreams[1]!.port, healthy: false, ejected: false },
      ];
      writeFileSync(file, JSON.stringify({ orders: legacy }));
      gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${file}, initialFetchTimeout: 300ms`));
      const snapshot = await eventually(() => gw!.gateway.registry.snapshot('orders'), 5000);
      assert.deepEqual(snapshot.instances.map((i) => [i.id, i.healthy, i.ejected]), [['n/a1@dc1', true, false], ['n/a2@dc1', false, false]]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('explain answers from Consul without starting a gateway', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1', 'sh-a');
    register('j1', 'bj-a', 'dc2');
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-explain-'));
    try {
      const file = join(dir, 'routes.yaml');
      writeFileSync(file, gatewayYaml(consul));
      const { stdout } = await run(process.execPath, ['src/cli.ts', 'explain', '--config', file, '--path', '/x', '--region', 'bj-a']);
      assert.match(stdout, /✓ zone\s+bj-a\s/);
      assert.match(stdout, /instance\s+consul-fixture\/j1@dc2 at 127\.0\.0\.1:\d+, zone bj-a/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('not ready until every routed service has a snapshot', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    consul.faults.status500(true);
    gw = await startGateway(gatewayYaml(consul, ', initialFetchTimeout: 300ms'));
    assert.equal((await fetch(`${gw.adminUrl}/readyz`)).status, 503);
    consul.faults.status500(false);
    register('a1', 'sh-a');
    await eventually(async () => ((await fetch(`${gw!.adminUrl}/readyz`)).status === 200 ? true : undefined), 5000);
  });
});

test('the consul client is the only Consul client: no source file speaks the Consul HTTP API itself', () => {
  const files = readdirSync('src', { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const read = (f: string): string => readFileSync(join('src', f), 'utf8');
  assert.deepEqual(files.filter((f) => /['"`]\/v1\//.test(read(f))), []);
  const clients = files.filter((f) => /from 'consul'/.test(read(f)));
  assert.deepEqual(clients, [join('discovery', 'consul-client.ts'), ...clients.filter((f) => f.startsWith('demo'))]);
  for (const f of clients) assert.ok(f.startsWith('discovery') || f.startsWith('demo'), `${f} imports the consul client`);
});
