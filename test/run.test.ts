// `zonegate run` as an operator drives it: SIGHUP reloads routes.yaml, SIGTERM drains. A hangup that arrives
// while the gateway is still starting or already draining must not end the process (SIGHUP's default action).
// An error nothing catches ends it, with a word in the log and nothing gathered for the log lost.
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { ConfigInput } from '../src/config/schema.ts';
import { HEALTH_LOG } from '../src/ratelimit/redis-health.ts';
import { isStartedLine, launchGatewayProcess } from './support/gateway-process.ts';
import { REJECTED_MESSAGE, THROWN_MESSAGE } from './support/fatal-trigger.ts';
import { configInput, pollUntil, refusedPort, send, within } from './support/http.ts';
import { echo, startUpstream } from './support/upstream.ts';

const START_MS = 15_000;

function routeTo(service: string, prefix: string): ConfigInput['routes'][number] {
  return { name: prefix.slice(1), match: { prefix }, service };
}

async function addRoute(file: string, route: ConfigInput['routes'][number]): Promise<void> {
  const running = JSON.parse(await readFile(file, 'utf8')) as ConfigInput;
  await writeFile(file, JSON.stringify({ ...running, routes: [...running.routes, route] }));
}

describe('SIGHUP', () => {
  it('while the gateway starts, neither ends it nor loses the change: the edited file applies once it runs', async (t) => {
    const upstream = await startUpstream('app');
    t.after(() => upstream.close());
    // Nothing listens at this Redis: the gateway waits up to 2 s for it before it starts serving.
    const redis = { url: `redis://127.0.0.1:${await refusedPort()}`, onError: 'allow' as const };
    const gateway = await launchGatewayProcess({ ...configInput({ services: { app: [upstream.address] }, routes: [routeTo('app', '/a')] }), redis });
    t.after(() => gateway.stop());

    await gateway.waitForLine((line) => line.msg === HEALTH_LOG.notReachable, START_MS, 'the starting gateway to find Redis unreachable');
    assert.equal(gateway.lines.some(isStartedLine), false, 'still starting');
    await addRoute(gateway.file, routeTo('app', '/b'));
    gateway.child.kill('SIGHUP');

    const started = await gateway.waitForLine(isStartedLine, START_MS, 'the gateway to start');
    await gateway.waitForLine((line) => line.msg === 'config reloaded', START_MS, 'the edited config to apply');
    const reply = await send(`http://127.0.0.1:${started.listen.port}`, { path: '/b/item' });
    assert.equal(reply.status, 200, 'the route added while it started is served');
    assert.equal(await gateway.stop(), 0);
  });

  it('while the gateway drains, is ignored: the request in flight finishes and the process exits 0', async (t) => {
    const release = Promise.withResolvers<void>();
    const upstream = await startUpstream('app', (req, res) => void release.promise.then(() => echo('app')(req, res)));
    t.after(() => upstream.close());
    t.after(() => release.resolve());
    const gateway = await launchGatewayProcess(configInput({ services: { app: [upstream.address] }, routes: [routeTo('app', '/a')] }));
    t.after(() => gateway.stop());
    const started = await gateway.waitForLine(isStartedLine, START_MS, 'the gateway to start');

    const inFlight = send(`http://127.0.0.1:${started.listen.port}`, { path: '/a/slow' });
    await pollUntil(() => (upstream.requests.length === 1 ? true : undefined), START_MS, 'the request to reach the upstream');
    gateway.child.kill('SIGTERM');
    await gateway.waitForLine((line) => line.msg === 'zonegate stopping: draining connections', START_MS, 'the drain to begin');
    gateway.child.kill('SIGHUP');
    await gateway.waitForLine((line) => line.msg === 'SIGHUP ignored: the gateway is stopping', START_MS, 'the hangup to be ignored');

    release.resolve();
    assert.equal((await inFlight).status, 200);
    assert.equal(await gateway.exited, 0);
  });
});

describe('an error nothing catches', () => {
  const trigger = fileURLToPath(new URL('./support/fatal-trigger.ts', import.meta.url));

  for (const { signal, message, origin } of [
    { signal: 'SIGUSR2', message: THROWN_MESSAGE, origin: 'uncaughtException' },
    { signal: 'SIGWINCH', message: REJECTED_MESSAGE, origin: 'unhandledRejection' },
  ] as const) {
    it(`(${origin}) is logged as a fatal line, the access lines still gathered are written, the gateway stops accepting and exits 1`, async (t) => {
      const upstream = await startUpstream('app');
      t.after(() => upstream.close());
      const gateway = await launchGatewayProcess(configInput({ services: { app: [upstream.address] }, routes: [routeTo('app', '/a')] }), {
        preload: trigger,
      });
      t.after(() => gateway.stop());
      const started = await gateway.waitForLine(isStartedLine, START_MS, 'the gateway to start');

      const reply = await send(`http://127.0.0.1:${started.listen.port}`, { path: '/a/last' });
      assert.equal(reply.status, 200);
      // Access lines wait up to 100 ms in memory before they are written: this one is still there when the error comes.
      gateway.child.kill(signal);

      assert.equal(await within(gateway.exited, START_MS, 'the process to exit'), 1);
      const accessAt = gateway.lines.findIndex((line) => line.msg === 'access' && line.reqId === reply.headers['x-request-id']);
      const fatalAt = gateway.lines.findIndex((line) => line.msg === 'unexpected error: the gateway exits');
      // (Its line may come after the fatal one: a response's line waits for its exchange to settle.)
      assert.notEqual(accessAt, -1, 'the access line of the last request was written');
      assert.notEqual(fatalAt, -1, 'a fatal line says why the process exits');
      const fatal = gateway.lines[fatalAt]!;
      assert.equal(fatal.level, 60);
      assert.equal(fatal.origin, origin);
      assert.match(String(fatal.err), new RegExp(`${message}\\n\\s+at `), 'with the stack');
      assert.match(gateway.stderr(), new RegExp(message), 'and on stderr, where Node would have printed it');
      const drainAt = gateway.lines.findIndex((line) => line.msg === 'zonegate stopping: draining connections');
      assert.ok(drainAt > fatalAt, 'then it stops accepting');
    });
  }
});
