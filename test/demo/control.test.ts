// The demo's control listener: it breaks simulated instances on request (kill, hang, fail a share, restore) and
// says when they received requests; `zonegate drill --demo` drives a running demo through it.
import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { startDemoControl } from '../../src/demo/control.ts';
import { connectDemo } from '../../src/drill/demo-fleet.ts';
import { LocalFleet, type FleetGateway } from '../../src/drill/fleet.ts';
import { runScenario } from '../../src/drill/run.ts';
import { SCENARIOS } from '../../src/drill/scenarios.ts';
import { FLEET_YAML } from '../drill/support.ts';

describe('the demo control listener', { timeout: 60_000 }, () => {
  let fleet: LocalFleet;
  let gateway: FleetGateway;
  let control: Server;
  let base: string;
  before(async () => {
    fleet = await LocalFleet.start(loadConfigText(FLEET_YAML, 'routes.yaml', {}));
    gateway = await fleet.gateway();
    control = await startDemoControl(fleet.upstreams, { gateway: gateway.origin, admin: gateway.admin.origin }, { host: '0.0.0.0', port: 0 });
    base = `http://127.0.0.1:${(control.address() as { port: number }).port}`;
  });
  after(async () => {
    control.close();
    await gateway.release();
    await fleet.close();
  });

  const instance = (zone: string) => fleet.upstreams.controls.find((c) => c.instance.zone === zone)!.instance;
  const post = (port: number, action: string) => fetch(`${base}/instances/${port}/${action}`, { method: 'POST' });
  const direct = async (port: number): Promise<number> => {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/x`, { signal: AbortSignal.timeout(300) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  };

  it('lists the gateway, its admin listener and the instances; listens on loopback only', async () => {
    assert.equal((control.address() as { address: string }).address, '127.0.0.1');
    const root = (await (await fetch(`${base}/`)).json()) as { gateway: string; admin: string; instances: { zone: string }[] };
    assert.equal(root.gateway, gateway.origin);
    assert.deepEqual(root.instances.map((i) => i.zone), ['sh-a', 'sh-b', 'bj-a']);
  });

  it('kills, hangs, fails a share and restores an instance; refuses what it cannot do', async () => {
    const { port } = instance('sh-b');
    assert.equal((await post(port, 'kill')).status, 200);
    assert.equal(await direct(port), 0, 'refused');
    assert.equal((await post(port, 'restore')).status, 200);
    assert.equal(await direct(port), 200);
    await post(port, 'fail?percent=50&status=502');
    const statuses = await Promise.all(Array.from({ length: 20 }, () => direct(port)));
    assert.equal(statuses.filter((status) => status === 502).length, 10);
    await post(port, 'hang');
    assert.equal(await direct(port), 0, 'no answer within 300 ms');
    await post(port, 'restore');
    assert.equal(await direct(port), 200);
    const since = Date.now() - 60_000;
    const { arrivals } = (await (await fetch(`${base}/instances/${port}/arrivals?since=${since}`)).json()) as { arrivals: number[] };
    assert.equal(arrivals.length, 23, 'every request that reached it, killed or not');
    assert.equal((await post(port, 'explode')).status, 400);
    assert.equal((await post(port, 'fail?percent=120')).status, 400);
    assert.equal((await post(1, 'kill')).status, 404);
    assert.equal((await fetch(`${base}/instances/${port}/kill`)).status, 405);
  });

  it('lets `zonegate drill --demo` run a scenario against the running gateway', async () => {
    const demo = await connectDemo(base, '');
    const zoneDark = SCENARIOS.find((scenario) => scenario.name === 'zone-dark')!;
    const options = { rate: 40, beforeMs: 800, duringMs: 1500, afterMs: 1000, path: '/api/x', method: 'GET', timeoutMs: 5000 };
    const result = await runScenario(demo, zoneDark, options);
    assert.equal(result.failedToRun, undefined);
    assert.equal(result.what, 'zone sh-a');
    assert.equal(result.measurement!.errorCount, 0, JSON.stringify(result.measurement!.errors));
    // the kill travels over HTTP: a request may still arrive in the moment after the fault's start
    assert.ok(result.measurement!.leftAfterMs! < 1000, `left after ${result.measurement!.leftAfterMs} ms`);
    assert.equal(await direct(instance('sh-a').port), 200, 'repaired');
    await assert.rejects(connectDemo('http://10.0.0.1:9909', ''), /loopback/);
  });
});
