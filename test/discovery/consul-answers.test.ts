// What Consul answers is checked, and no failure of the watch loop reaches a caller: malformed entries, broken
// answers, cut connections, an index going back; plus WAN addresses and the snapshot file's write cadence.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { after, afterEach, before, describe, test } from 'node:test';
import { parseSnapshotFile } from '../../src/discovery/snapshot-file.ts';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { gatewayYaml, servedBy, snapshotScratch } from '../support/consul-fixture-gateway.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { pollUntil } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const escaped: unknown[] = [];
const collect = (reason: unknown): void => void escaped.push(reason);

const SKIPPED = 'consul answer entries skipped: they do not hold what an instance needs (logged at most once a minute)';
const FAILED = 'consul query failed; serving the last known snapshot';

describe('checked Consul answers', { timeout: 60_000 }, () => {
  const names = ['a1', 'a2', 'a3', 'j1'];
  const upstreams = new Map<string, TestUpstream>();
  let consul: ConsulFixture;
  let gw: TestGateway | undefined;

  before(async () => {
    process.on('unhandledRejection', collect);
    for (const name of names) upstreams.set(name, await startUpstream(name));
  });
  after(async () => {
    process.off('unhandledRejection', collect);
    await Promise.all([...upstreams.values()].map((u) => u.close()));
  });
  afterEach(async () => {
    await gw?.close();
    gw = undefined;
    await consul.close();
    assert.deepEqual(escaped, [], 'no unhandled rejection');
  });

  function register(name: string, zone = 'sh-a', dc = 'dc1'): void {
    consul.register(dc, { service: 'orders', id: name, port: upstreams.get(name)!.port, address: '127.0.0.1', zone });
  }

  async function ids(): Promise<string[]> {
    return (gw!.gateway.registry.snapshot('orders')?.instances ?? []).map((i) => i.id);
  }

  test('an entry with Checks: null and one without a port: the rest of the answer applies, the bad entry is logged once', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    for (const name of ['a1', 'a2', 'a3']) register(name);
    consul.faults.rewriteAnswers((entries) =>
      entries.map((entry) => {
        if (entry.Service.ID === 'a1') return { ...entry, Checks: null };
        if (entry.Service.ID === 'a2') return { ...entry, Service: { ...entry.Service, Port: undefined } };
        return entry;
      }),
    );
    gw = await startGateway(gatewayYaml(consul));
    assert.deepEqual(await ids(), ['consul-fixture/a1@dc1', 'consul-fixture/a3@dc1']);
    const skipped = await gw.log.waitFor((line) => line.msg === SKIPPED);
    assert.deepEqual([skipped.service, skipped.dc, skipped.skipped], ['orders', 'dc1', 1]);
    assert.match(String((skipped.problems as string[])[0]), /^\[1\]\.Service\.Port: /);
    assert.ok(!gw.log.lines.some((line) => line.msg === FAILED), 'not an outage');
    // more answers with the same bad entry: no more lines for a minute
    for (const name of ['j1']) register(name, 'sh-a');
    await pollUntil(async () => ((await ids()).length === 3 ? true : undefined), 5000, 'the next answer');
    assert.equal(gw.log.lines.filter((line) => line.msg === SKIPPED).length, 1);
    const served = await Promise.all(Array.from({ length: 20 }, () => servedBy(gw!)));
    assert.ok(served.every((r) => r.status === 200 && r.upstream !== 'consul-fixture/a2@dc1'), JSON.stringify(served));
  });

  test('every failure the watch loop can meet, one after another: the gateway keeps serving every request', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    register('a1');
    gw = await startGateway(gatewayYaml(consul));
    const statuses: number[] = [];
    let serving = true;
    const traffic = (async () => {
      while (serving) statuses.push((await servedBy(gw!)).status);
    })();
    const faults: [string, () => void][] = [
      ['a connection reset in the middle of the body', () => consul.faults.resetMidBody(2)],
      ['a body that is not JSON', () => consul.faults.rewriteAnswers(() => '[{"Node": {"Node": "x"')],
      ['an answer that is not a list', () => consul.faults.rewriteAnswers(() => ({ orders: 'everything is fine' }))],
      ['an answer that is null', () => consul.faults.rewriteAnswers(() => null)],
      ['the index going backwards', () => consul.faults.resetIndex(1)],
    ];
    try {
      let changes = 0;
      for (const [what, inject] of faults) {
        await consul.waitForBlocking(2);
        const failuresBefore = gw.log.lines.filter((line) => line.msg === FAILED).length;
        inject();
        // wake the parked queries with a real change (one more instance of a1), so the fault is what they get back
        const next = `change-${++changes}`;
        consul.register('dc1', { service: 'orders', id: next, port: upstreams.get('a1')!.port, address: '127.0.0.1', zone: 'sh-a' });
        if (what !== 'the index going backwards') {
          await pollUntil(() => (gw!.log.lines.filter((line) => line.msg === FAILED).length > failuresBefore ? true : undefined), 10_000, `${what}: logged`);
          assert.ok(gw.gateway.registry.snapshot('orders')!.instances.length >= 1, `${what}: the last good snapshot stands`);
          consul.faults.rewriteAnswers(undefined);
        }
        await pollUntil(async () => ((await ids()).includes(`consul-fixture/${next}@dc1`) ? true : undefined), 10_000, `${what}: recovered`);
      }
      // after all of it, changes still arrive
      consul.setCheck('dc1', 'service:a1', 'critical');
      await pollUntil(() => (gw!.gateway.registry.snapshot('orders')!.healthy.every((i) => i.id !== 'consul-fixture/a1@dc1') ? true : undefined), 10_000, 'a1 out');
    } finally {
      serving = false;
      await traffic;
    }
    assert.ok(statuses.length > 10, `${statuses.length} requests`);
    assert.deepEqual(new Set(statuses), new Set([200]));
  });

  for (const how of ['reset', 'close'] as const) {
    test(`a connection cut in the middle of an answer (${how}) fails its query at once, not after the blocking wait (30 s here)`, async () => {
      consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
      register('a1');
      gw = await startGateway(gatewayYaml(consul));
      await consul.waitForBlocking(2);
      consul.faults.resetMidBody(1, how);
      const cutAt = performance.now();
      register('a2');
      // the cut answer is logged, retried after a short backoff, and the change arrives in seconds, not after the wait
      await pollUntil(async () => ((await ids()).includes('consul-fixture/a2@dc1') ? true : undefined), 10_000, 'a2 after the cut');
      assert.ok(performance.now() - cutAt < 10_000);
      const failure = gw.log.lines.find((line) => line.msg === FAILED);
      assert.match(String(failure?.err), how === 'reset' ? /ECONNRESET|closed in the middle/ : /closed in the middle of the answer/);
    });
  }

  test('an instance of the other datacenter is reached at its WAN address; translateWanAddresses: false keeps the LAN one', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    const j1 = upstreams.get('j1')!;
    // its LAN address is not reachable from here (TEST-NET-1); its WAN address is
    consul.register('dc2', {
      service: 'orders',
      id: 'j1',
      port: 8080,
      address: '192.0.2.10',
      zone: 'bj-a',
      taggedAddresses: { lan: { Address: '192.0.2.10', Port: 8080 }, wan: { Address: '127.0.0.1', Port: j1.port } },
    });
    register('a1');
    gw = await startGateway(gatewayYaml(consul));
    assert.deepEqual(await servedBy(gw, 'bj-a'), { status: 200, upstream: 'consul-fixture/j1@dc2' });
    const remote = gw.gateway.registry.snapshot('orders')!.instances.find((i) => i.datacenter === 'dc2')!;
    assert.equal(remote.address, `127.0.0.1:${j1.port}`);
    await gw.close();
    gw = await startGateway(gatewayYaml(consul, ', translateWanAddresses: false'));
    const lan = gw.gateway.registry.snapshot('orders')!.instances.find((i) => i.datacenter === 'dc2')!;
    assert.equal(lan.address, '192.0.2.10:8080');
  });

  test('the snapshot file is written while changes keep coming (one every 600 ms), at most once a second', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    const scratch = await snapshotScratch();
    try {
      register('a1');
      gw = await startGateway(gatewayYaml(consul, `, snapshotFile: ${scratch.file}`));
      const versions: number[] = [];
      const seen = new Set<string>();
      const watchFile = setInterval(() => {
        if (!existsSync(scratch.file)) return;
        const text = readFileSync(scratch.file, 'utf8');
        if (seen.has(text)) return;
        seen.add(text);
        const read = parseSnapshotFile(text);
        assert.ok('services' in read, 'every version of the file reads back');
        versions.push(read.services['orders']!.find((i) => i.id === 'consul-fixture/a1@dc1')!.weight);
      }, 25);
      // a change every 600 ms: a1's weight counts up
      const startedAt = performance.now();
      let weight = 1;
      while (performance.now() - startedAt < 4000) {
        weight += 1;
        consul.register('dc1', { service: 'orders', id: 'a1', port: upstreams.get('a1')!.port, address: '127.0.0.1', zone: 'sh-a', weights: { passing: weight, warning: 1 } });
        await new Promise((resolve) => setTimeout(resolve, 600));
      }
      clearInterval(watchFile);
      // a trailing debounce would not have written anything newer than the first answer until the changes stopped
      assert.ok(versions.length >= 3, `the file's versions while changes came: weights ${versions.join(', ')}`);
      assert.ok(versions.length <= 6, `at most once a second over 4 s: weights ${versions.join(', ')}`);
      assert.ok(versions.at(-1)! >= weight - 3, `the file keeps up: last written ${versions.at(-1)}, last change ${weight}`);
    } finally {
      await scratch.remove();
    }
  });
});

