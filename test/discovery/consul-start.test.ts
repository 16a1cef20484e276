// Starting while the control plane is down or slow: the snapshot file first, warm-up across datacenters,
// bad files survived. The real `consul` client in a real gateway against the Consul API fixture.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { badSnapshotFiles, gatewayYaml, readyz, servedBy, snapshotScratch } from '../support/consul-fixture-gateway.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { pollUntil, refusedPort } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const escaped: unknown[] = [];
const collect = (reason: unknown): void => void escaped.push(reason);

/** A snapshot file's instance of `orders`. */
function fileInstance(id: string, port: number, zone: string, datacenter: string): Record<string, unknown> {
  return { id, service: 'orders', host: '127.0.0.1', port, zone, weight: 1, tags: [], meta: { zone }, healthy: true, datacenter };
}

describe('starting while Consul is down or slow', { timeout: 60_000 }, () => {
  let a1: TestUpstream;
  let j1: TestUpstream;
  let consul: ConsulFixture;
  let gw: TestGateway | undefined;
  let scratch: Awaited<ReturnType<typeof snapshotScratch>>;

  before(async () => {
    process.on('unhandledRejection', collect);
    a1 = await startUpstream('a1');
    j1 = await startUpstream('j1');
  });
  after(async () => {
    process.off('unhandledRejection', collect);
    await Promise.all([a1.close(), j1.close()]);
  });
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await consul.close();
    await scratch.remove();
    assert.deepEqual(escaped, [], 'no unhandled rejection');
  });

  async function setUp(): Promise<void> {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    scratch = await snapshotScratch();
  }

  function goodFile(): void {
    writeFileSync(scratch.file, JSON.stringify({ orders: [fileInstance('consul-fixture/a1@dc1', a1.port, 'sh-a', 'dc1')] }));
  }

  for (const outage of ['answers 500', 'hangs'] as const) {
    const fail = (): void => (outage === 'hangs' ? consul.faults.hang(true) : consul.faults.status500(true));

    test(`every kind of bad snapshot file while Consul ${outage}: logged, ignored, the gateway serves its errors and stays up`, async () => {
      await setUp();
      fail();
      for (const [kind, text] of Object.entries(badSnapshotFiles(fileInstance('n/a1@dc1', a1.port, 'sh-a', 'dc1')))) {
        writeFileSync(scratch.file, text);
        gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${scratch.file}, initialFetchTimeout: 200ms`));
        const ignored = await gw.log.waitFor((line) => String(line.msg).startsWith('snapshot file ignored'));
        assert.equal(ignored.file, scratch.file, kind);
        assert.ok(String(ignored.problem).length > 5, `${kind}: ${String(ignored.problem)}`);
        const ready = await readyz(gw.adminUrl);
        assert.deepEqual(ready, { status: 503, body: { status: 'not_ready', missing: [{ service: 'orders', datacenters: ['dc1', 'dc2'] }] } }, kind);
        const res = await fetch(`${gw.url}/x`, { headers: { 'x-region-id': 'sh-a' } });
        assert.equal(res.status, 503, kind);
        assert.equal(((await res.json()) as { error: string }).error, 'no_healthy_upstream', kind);
        await gw.close();
        gw = undefined;
        assert.deepEqual(escaped, [], `${kind}: no unhandled rejection`);
      }
    });

    test(`a good snapshot file while Consul ${outage} serves the first request after start`, async () => {
      await setUp();
      goodFile();
      fail();
      gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${scratch.file}, initialFetchTimeout: 300ms`));
      assert.deepEqual(await servedBy(gw), { status: 200, upstream: 'consul-fixture/a1@dc1' });
      const ready = await readyz(gw.adminUrl);
      assert.deepEqual(ready, { status: 200, body: { status: 'ready', missing: [{ service: 'orders', datacenters: ['dc1', 'dc2'] }] } });
      const warned = await gw.log.waitFor((line) => String(line.msg).includes('within initialFetchTimeout'));
      assert.deepEqual(warned.fromSnapshotFile, ['orders']);
    });
  }

  test('a live answer wins over the snapshot file', async () => {
    await setUp();
    // the file says a1; Consul, once it answers, says j1 (in sh-a)
    goodFile();
    consul.register('dc1', { service: 'orders', id: 'j1', port: j1.port, address: '127.0.0.1', zone: 'sh-a' });
    const release = [consul.faults.holdDatacenter('dc1'), consul.faults.holdDatacenter('dc2')];
    const starting = startGateway(gatewayYaml(consul, `, snapshotFile: ${scratch.file}, initialFetchTimeout: 30s`));
    await consul.waitForRequest((r) => r.query.dc === 'dc2');
    for (const answer of release) answer();
    gw = await starting;
    const served = await Promise.all(Array.from({ length: 10 }, () => servedBy(gw!)));
    assert.deepEqual(new Set(served.map((r) => `${r.status} ${r.upstream}`)), new Set(['200 consul-fixture/j1@dc1']));
    assert.ok(gw.log.lines.some((line) => line.msg === 'serving instances from the snapshot file until consul answers'));
  });

  test('two datacenters, one answering late: the listener opens only after it, and a dc2-only zone is served in its zone at once', async () => {
    await setUp();
    consul.register('dc1', { service: 'orders', id: 'a1', port: a1.port, address: '127.0.0.1', zone: 'sh-a' });
    consul.register('dc2', { service: 'orders', id: 'j1', port: j1.port, address: '127.0.0.1', zone: 'bj-a' });
    const release = consul.faults.holdDatacenter('dc2');
    const ports = { listen: await refusedPort(), admin: await refusedPort() };
    const starting = startGateway(gatewayYaml(consul, ', initialFetchTimeout: 30s'), {}, ports);
    const adminUrl = `http://127.0.0.1:${ports.admin}`;
    // dc1 has answered: /readyz names what the listener still waits for
    const waiting = await pollUntil(
      async () => {
        const ready = await readyz(adminUrl).catch(() => undefined);
        return ready && JSON.stringify(ready.body.missing) === JSON.stringify([{ service: 'orders', datacenters: ['dc2'] }]) ? ready : undefined;
      },
      10_000,
      '/readyz to name dc2 alone',
    );
    assert.equal(waiting.status, 503);
    await assert.rejects(fetch(`http://127.0.0.1:${ports.listen}/x`), 'the proxy listener is not open before dc2 answers');
    release();
    gw = await starting;
    // the very first request of a caller in bj-a, whose instances are in dc2 only
    assert.deepEqual(await servedBy(gw, 'bj-a'), { status: 200, upstream: 'consul-fixture/j1@dc2' });
    assert.deepEqual(await readyz(gw.adminUrl), { status: 200, body: { status: 'ready' } });
  });

  test('a reload that replaces discovery keeps every datacenter serving until each answers again', async () => {
    await setUp();
    consul.register('dc1', { service: 'orders', id: 'a1', port: a1.port, address: '127.0.0.1', zone: 'sh-a' });
    consul.register('dc2', { service: 'orders', id: 'j1', port: j1.port, address: '127.0.0.1', zone: 'bj-a' });
    gw = await startGateway(gatewayYaml(consul));
    const before = gw.gateway.consul;
    consul.faults.holdDatacenter('dc2');
    assert.equal(await gw.gateway.reload(loadConfigText(gatewayYaml(consul, ', maxDropRatio: 0.9'), 'routes.yaml', {})), true);
    assert.notEqual(gw.gateway.consul, before, 'a new discovery');
    await pollUntil(() => (JSON.stringify(gw!.gateway.consul!.missing()) === JSON.stringify([{ service: 'orders', datacenters: ['dc2'] }]) ? true : undefined), 10_000, 'dc1 to answer');
    assert.deepEqual(gw.gateway.registry.snapshot('orders')!.instances.map((i) => i.id), ['consul-fixture/a1@dc1', 'consul-fixture/j1@dc2']);
    assert.deepEqual(await servedBy(gw, 'bj-a'), { status: 200, upstream: 'consul-fixture/j1@dc2' });
  });

  test('a datacenter that never answers: the listener opens after initialFetchTimeout, with the snapshot file for it, logged', async () => {
    await setUp();
    consul.register('dc1', { service: 'orders', id: 'a1', port: a1.port, address: '127.0.0.1', zone: 'sh-a' });
    writeFileSync(scratch.file, JSON.stringify({ orders: [fileInstance('consul-fixture/j1@dc2', j1.port, 'bj-a', 'dc2')] }));
    consul.faults.holdDatacenter('dc2');
    const started = performance.now();
    gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${scratch.file}, initialFetchTimeout: 1s`));
    assert.ok(performance.now() - started >= 900, 'waited for the timeout');
    const warned = await gw.log.waitFor((line) => String(line.msg).includes('within initialFetchTimeout'));
    assert.deepEqual(warned.missing, [{ service: 'orders', datacenters: ['dc2'] }]);
    assert.deepEqual(await servedBy(gw, 'bj-a'), { status: 200, upstream: 'consul-fixture/j1@dc2' }, 'dc2 from the file');
    assert.deepEqual(await servedBy(gw, 'sh-a'), { status: 200, upstream: 'consul-fixture/a1@dc1' }, 'dc1 from Consul');
    assert.deepEqual(await readyz(gw.adminUrl), { status: 200, body: { status: 'ready', missing: [{ service: 'orders', datacenters: ['dc2'] }] } });
  });
});
