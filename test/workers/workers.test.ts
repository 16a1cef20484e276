// `zonegate run` with `gateway.workers: 2`, as real processes: a primary and two workers on one proxy address.
// One gateway from outside: both workers serve, limits and metrics are the gateway's, reloads and the drain reach
// every worker, and a killed worker is replaced while the other serves on.
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import type { Agent } from 'node:http';
import { after, before, describe, test } from 'node:test';
import type { ConfigInput } from '../../src/config/schema.ts';
import { isStartedLine, launchGatewayProcess, type LaunchedGateway } from '../support/gateway-process.ts';
import { pollUntil, within } from '../support/http.ts';
import { echo, startUpstream, type TestUpstream } from '../support/upstream.ts';
import { ask, connectionPerWorker, metricValue } from '../support/workers.ts';

function gatewayConfig(upstreams: readonly TestUpstream[], probeRoute = 'probe'): ConfigInput {
  const [a1, a2, b1] = upstreams;
  return {
    gateway: { zone: 'sh-a', routingHeaders: true, workers: 2, drainTimeout: '10s', listen: '127.0.0.1:0', admin: '127.0.0.1:0' },
    topology: { 'cn-east': { shanghai: ['sh-a', 'sh-b'] } },
    discovery: {
      static: {
        app: [
          { address: a1!.address, zone: 'sh-a', id: 'a1' },
          { address: a2!.address, zone: 'sh-a', id: 'a2' },
          { address: b1!.address, zone: 'sh-b', id: 'b1' },
        ],
      },
    },
    routes: [
      { name: probeRoute, match: { prefix: '/probe' }, service: 'app' },
      { name: 'limited', match: { prefix: '/limited' }, service: 'app', rateLimit: { key: 'route', rate: '1/m', burst: 6 } },
      { name: 'sticky', match: { prefix: '/sticky' }, service: 'app', sticky: { header: 'X-User-ID' } },
      { name: 'slow', match: { prefix: '/slow' }, service: 'app' },
    ],
  };
}

describe('zonegate run with two workers', { timeout: 120_000 }, () => {
  const upstreams: TestUpstream[] = [];
  /** /slow requests held by the upstreams until released */
  const held: (() => void)[] = [];
  let gateway: LaunchedGateway;
  let url: string;
  let adminUrl: string;
  let pids: number[];
  let agents: Map<number, Agent>;

  before(async () => {
    for (const name of ['a1', 'a2', 'b1']) {
      const answer = echo(name);
      upstreams.push(
        await startUpstream(name, (req, res) => {
          if (req.url?.startsWith('/slow')) held.push(() => answer(req, res));
          else answer(req, res);
        }),
      );
    }
    gateway = await launchGatewayProcess(gatewayConfig(upstreams));
    const started = await gateway.waitForLine(isStartedLine, 30_000, 'the start line');
    url = `http://127.0.0.1:${started.listen.port}`;
    adminUrl = `http://127.0.0.1:${started.admin.port}`;
    pids = (started as unknown as { pids: number[] }).pids;
    await pollUntil(async () => ((await fetch(`${adminUrl}/readyz`)).status === 200 ? true : undefined), 20_000, '/readyz 200');
  });

  after(async () => {
    if (gateway.child.exitCode === null) await gateway.stop();
    for (const agent of agents?.values() ?? []) agent.destroy();
    for (const release of held.splice(0)) release();
    await Promise.all(upstreams.map((upstream) => upstream.close()));
  });

  test('both workers serve, each its own process, and the primary serves none', async () => {
    assert.equal(pids.length, 2);
    agents = await connectionPerWorker(url, 2);
    assert.deepEqual([...agents.keys()].sort(), [...pids].sort());
    assert.ok(!pids.includes(gateway.child.pid!), 'the primary is no worker');
    const ready = (await (await fetch(`${adminUrl}/readyz`)).json()) as { workers: { listening: number; of: number } };
    assert.deepEqual(ready.workers, { listening: 2, of: 2 });
  });

  test('stickiness and locality pick the same instance in every worker', async () => {
    for (let user = 0; user < 12; user++) {
      const picks = await Promise.all([...agents].map(([, agent]) => ask(url, '/sticky', agent, { 'x-user-id': `u${user}` })));
      assert.equal(new Set(picks.map((pick) => pick.headers['x-zonegate-upstream'])).size, 1, `user u${user}: ${picks.map((p) => p.headers['x-zonegate-upstream'])}`);
      assert.notEqual(picks[0]!.pid, picks[1]!.pid);
    }
    for (const [, agent] of agents) {
      const local = await ask(url, '/probe', agent, { 'x-region-id': 'sh-b' });
      assert.equal(local.headers['x-zonegate-upstream'], 'b1');
      assert.equal(local.headers['x-zonegate-tier'], 'zone');
    }
  });

  test('an in-memory limit is the whole gateway\'s: burst 6 admits 6 across both workers, not 12', async () => {
    const [first, second] = [...agents.values()];
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await ask(url, '/limited', i % 2 === 0 ? first : second)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 200, 429, 429, 429, 429, 429, 429]);
  });

  test('/metrics adds up every worker; per-worker gauges carry a worker label', async () => {
    const text = await pollUntil(
      async () => {
        const body = await (await fetch(`${adminUrl}/metrics`)).text();
        return metricValue(body, 'zonegate_requests_total{route="limited",code="4xx"}') === 6 ? body : undefined;
      },
      10_000,
      'the 429s of both workers counted',
    );
    assert.equal(metricValue(text, 'zonegate_requests_total{route="limited",code="2xx"}'), 6);
    assert.equal(metricValue(text, 'zonegate_requests_total{route="sticky",code="2xx"}'), 24);
    assert.equal(metricValue(text, 'zonegate_request_duration_seconds_count{route="sticky"}'), 24);
    assert.equal(metricValue(text, 'zonegate_workers'), 2);
    for (const worker of [1, 2]) assert.equal(metricValue(text, `zonegate_breakers{service="app",state="closed",worker="${worker}"}`), 3);
  });

  test('the admin API answers for the whole gateway from the primary', async () => {
    const get = async (path: string): Promise<unknown> => (await fetch(`${adminUrl}${path}`)).json();
    const { routes } = (await get('/admin/routes')) as { routes: { name: string }[] };
    assert.deepEqual(routes.map((route) => route.name), ['probe', 'limited', 'sticky', 'slow']);
    const explained = (await get('/admin/explain?path=/probe&region=sh-b')) as { route: string; instance: { id: string; tier: string } };
    assert.deepEqual([explained.route, explained.instance.id, explained.instance.tier], ['probe', 'b1', 'zone']);
    const [app] = (await get('/admin/upstreams')) as { service: string; registered: number; healthy: number }[];
    assert.deepEqual([app!.service, app!.registered, app!.healthy], ['app', 3, 3]);
  });

  test('a reload reaches every worker; a bad file keeps the running config in all of them', async () => {
    await writeFile(gateway.file, JSON.stringify(gatewayConfig(upstreams, 'probe-reloaded')));
    gateway.child.kill('SIGHUP');
    await gateway.waitForLine((line) => line.msg === 'config reloaded in every worker', 15_000, 'the reload');
    for (const [pid, agent] of agents) assert.equal((await ask(url, '/probe', agent)).headers['x-zonegate-route'], 'probe-reloaded', `worker ${pid}`);
    await writeFile(gateway.file, 'routes: [ { name: broken');
    gateway.child.kill('SIGHUP');
    await gateway.waitForLine((line) => line.msg === 'config reload rejected; the running config stays in force', 15_000, 'the rejection');
    for (const [pid, agent] of agents) assert.equal((await ask(url, '/probe', agent)).headers['x-zonegate-route'], 'probe-reloaded', `worker ${pid}`);
    await writeFile(gateway.file, JSON.stringify(gatewayConfig(upstreams, 'probe-reloaded')));
  });

  test('a killed worker is replaced, and not one request on the other fails meanwhile', async () => {
    const [survivor, victim] = [...agents.keys()];
    const kept = agents.get(survivor!)!;
    const metrics = async (): Promise<string> => (await fetch(`${adminUrl}/metrics`)).text();
    const stickyBefore = metricValue(await metrics(), 'zonegate_requests_total{route="sticky",code="2xx"}');
    assert.equal(stickyBefore, 24, 'counted by both workers');
    const restarted = gateway.waitForLine((line) => line.msg === 'worker restarted', 30_000, 'the restart');
    let done = false;
    void restarted.then(() => (done = true), () => (done = true));
    process.kill(victim!, 'SIGKILL');
    let served = 0;
    while (!done) {
      const reply = await ask(url, '/probe', kept);
      assert.equal(reply.status, 200);
      assert.equal(reply.pid, survivor);
      served += 1;
    }
    await restarted;
    assert.ok(served > 0);
    const exited = gateway.lines.find((line) => line.msg === 'worker exited; starting another in its place');
    assert.equal(exited?.pid, victim);
    for (const agent of agents.values()) agent.destroy();
    agents = await connectionPerWorker(url, 2);
    assert.ok(agents.has(survivor!) && !agents.has(victim!), `serving: ${[...agents.keys()]}`);
    await pollUntil(async () => ((await fetch(`${adminUrl}/readyz`)).status === 200 ? true : undefined), 10_000, 'ready again');
    // what the killed worker had counted is still in the gateway's counters
    const after = await metrics();
    assert.equal(metricValue(after, 'zonegate_requests_total{route="sticky",code="2xx"}'), 24);
    assert.equal(metricValue(after, 'zonegate_worker_restarts_total'), 1);
  });

  test('access lines of both workers, written at once, reach stdout as whole lines', async () => {
    const long = `/probe/${'x'.repeat(3000)}`;
    const before = gateway.lines.filter((line) => line.msg === 'access').length;
    // a reader that falls behind: the pipe fills, and writers wait for room with half a batch written
    gateway.child.stdout!.pause();
    const replies = await Promise.all(Array.from({ length: 300 }, (_, i) => ask(url, long, [...agents.values()][i % 2])));
    assert.equal(new Set(replies.map((reply) => reply.pid)).size, 2);
    gateway.child.stdout!.resume();
    await pollUntil(() => (gateway.lines.filter((line) => line.msg === 'access').length >= before + 300 ? true : undefined), 10_000, 'every access line');
    assert.deepEqual(gateway.lines.filter((line) => 'text' in line).map((line) => String(line.text).slice(0, 80)), []);
  });

  test('SIGTERM drains every worker: requests in flight on both finish, then the primary exits 0', async () => {
    const inFlight = [...agents.values()].map((agent) => ask(url, '/slow', agent));
    await pollUntil(() => (held.length === 2 ? true : undefined), 10_000, 'a request in flight in each worker');
    gateway.child.kill('SIGTERM');
    await gateway.waitForLine((line) => line.msg === 'zonegate stopping: draining every worker', 10_000, 'the drain');
    for (const release of held.splice(0)) release();
    const replies = await within(Promise.all(inFlight), 10_000, 'the held requests');
    assert.deepEqual(replies.map((reply) => reply.status), [200, 200]);
    assert.equal(new Set(replies.map((reply) => reply.pid)).size, 2);
    assert.equal(await within(gateway.exited, 20_000, 'the exit'), 0, gateway.stderr());
    // every line the three processes wrote reached stdout whole
    assert.deepEqual(gateway.lines.filter((line) => 'text' in line), []);
    assert.equal(gateway.lines.filter((line) => line.msg === 'zonegate stopped').length, 3);
  });
});
