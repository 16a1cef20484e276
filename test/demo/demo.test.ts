// `zonegate demo` as a user runs it: a child process serving the repo's routes.yaml (on free ports).
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Agent, request } from 'undici';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { pollUntil } from '../support/http.ts';
import { ZONEGATE_BIN, zonegateEnv } from '../support/gateway-process.ts';

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

/** The repo's routes.yaml with every upstream, the listener and the admin moved to free loopback ports. */
async function demoConfig(dir: string): Promise<string> {
  let text = readFileSync('routes.yaml', 'utf8');
  for (const address of new Set(text.match(/127\.0\.0\.1:90\d\d/g))) {
    text = text.replaceAll(address, `127.0.0.1:${await freePort()}`);
  }
  const file = join(dir, 'routes.yaml');
  writeFileSync(file, text);
  return file;
}

interface Demo {
  readonly child: ChildProcess;
  readonly url: string;
  readonly startedInMs: number;
  /** what the demo printed so far (its stderr) */
  printed(): string;
}

async function startDemo(config: string, extraArgs: string[] = []): Promise<Demo> {
  const started = performance.now();
  const child = spawn(ZONEGATE_BIN, ['demo', '--config', config, ...extraArgs], {
    env: zonegateEnv({ ZONEGATE_LISTEN: '127.0.0.1:0', ZONEGATE_ADMIN: '127.0.0.1:0', ZONEGATE_DEMO_CONTROL: '127.0.0.1:0' }),
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      const match = /curl -si (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`demo exited with ${code}: ${stderr}`)));
  });
  return { child, url, startedInMs: performance.now() - started, printed: () => stderr };
}

/**
 * startDemo on the repo's routes.yaml moved to free ports. A port found free can be taken by another process (a
 * test running beside this one) before the demo binds it; then it is tried again on other ports.
 */
async function startDemoOnFreePorts(dir: string, extraArgs: string[] = []): Promise<Demo> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await startDemo(await demoConfig(dir), extraArgs);
    } catch (err) {
      if (attempt === 3 || !String(err).includes('EADDRINUSE')) throw err;
    }
  }
}

async function stopDemo(demo: Demo): Promise<number | null> {
  const exited = once(demo.child, 'exit');
  demo.child.kill('SIGTERM');
  const [code] = await exited;
  return code as number | null;
}

describe('zonegate demo', { timeout: 30_000 }, () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zonegate-demo-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('is up within 10 s and answers the behaviours it advertises', async () => {
    const demo = await startDemoOnFreePorts(dir);
    try {
      assert.ok(demo.startedInMs < 10_000, `up after ${demo.startedInMs} ms`);

      const local = await fetch(`${demo.url}/api/order/7`, { headers: { 'x-request-id': 'demo-req-1' } });
      const localBody = (await local.json()) as { zone: string; service: string; requestId: string };
      assert.equal(local.status, 200);
      assert.equal(local.headers.get('x-zonegate-tier'), 'zone');
      assert.equal(local.headers.get('x-zonegate-route'), 'orders');
      assert.deepEqual([localBody.service, localBody.zone, localBody.requestId], ['order-service', 'sh-a', 'demo-req-1']);

      const beijing = await fetch(`${demo.url}/api/order/7`, { headers: { 'x-region-id': 'bj-a' } });
      assert.equal(((await beijing.json()) as { zone: string }).zone, 'bj-a');

      const remoteWrite = await fetch(`${demo.url}/api/inventory`, { method: 'POST', body: '{}' });
      assert.equal(remoteWrite.status, 503);
      assert.equal(((await remoteWrite.json()) as { error: string }).error, 'remote_write_refused');

      const gray = await fetch(`${demo.url}/api/order/7`, { headers: { 'x-release': 'gray' } });
      assert.equal(((await gray.json()) as { service: string }).service, 'order-v2');

      // the dashboard and metrics it advertises answer (the repo's routes.yaml sets no admin token by default)
      const admin = /dashboard .* is at (http:\/\/127\.0\.0\.1:\d+)\//.exec(demo.printed())?.[1];
      assert.ok(admin, 'the demo prints the dashboard address');
      const dashboard = await fetch(`${admin}/`);
      assert.equal(dashboard.status, 200);
      assert.match(await dashboard.text(), /<title>zonegate<\/title>/);
      assert.match(await (await fetch(`${admin}/metrics`)).text(), /^zonegate_requests_total\{route="orders",code="2xx"\} \d+$/m);

      // how to break it: a drill against this demo (its control listener answers) and an admin call that injects a fault
      const printed = await pollUntil(() => (/admin\/faults\/orders\n/.test(demo.printed()) ? demo.printed() : undefined), 5000, 'the break-this lines');
      const control = /npx zonegate drill --demo (http:\/\/127\.0\.0\.1:\d+) --scenario zone-dark/.exec(printed)?.[1];
      assert.ok(control, printed);
      const listed = (await (await fetch(`${control}/`)).json()) as { gateway: string };
      assert.equal(listed.gateway, demo.url);
      const curl = /curl -X PUT -d '(\{[^']+\})' (http:\/\/\S+)/.exec(printed);
      assert.equal(curl?.[2], `${admin}/admin/faults/orders`);
      assert.equal((await fetch(curl[2], { method: 'PUT', body: curl[1] })).status, 200);
      const statuses = await Promise.all(Array.from({ length: 4 }, async () => (await fetch(`${demo.url}/api/order/7`)).status));
      assert.deepEqual(statuses.sort(), [200, 200, 503, 503], 'half of /api/order is answered 503');
    } finally {
      assert.equal(await stopDemo(demo), 0, 'SIGTERM drains and exits 0');
    }
  });

  test('with --tls serves HTTPS and HTTP/2 with a certificate it made', async () => {
    process.env.ZONEGATE_TLS_LISTEN = '127.0.0.1:0';
    const demo = await startDemoOnFreePorts(dir, ['--tls']).finally(() => delete process.env.ZONEGATE_TLS_LISTEN);
    try {
      const printed = await pollUntil(() => /--http2 --cacert (\S+) .*(https:\/\/localhost:\d+)/.exec(demo.printed()) ?? undefined, 10_000, 'the HTTPS lines');
      const [, cacert, base] = printed;
      const agent = new Agent({ connect: { ca: readFileSync(cacert!) }, allowH2: true });
      try {
        const res = await request(`${base}/api/order/7`, { dispatcher: agent, headers: { 'x-region-id': 'bj-a' } });
        assert.equal(res.statusCode, 200);
        assert.equal(((await res.body.json()) as { zone: string }).zone, 'bj-a');
      } finally {
        await agent.close();
      }
    } finally {
      assert.equal(await stopDemo(demo), 0);
    }
  });

  describe('with --consul', () => {
    let consul: ConsulFixture;
    before(async () => {
      consul = await startConsulFixture();
    });
    after(async () => {
      await consul.close();
    });

    test('registers the instances with Meta.zone and an HTTP check, routes through Consul, deregisters on exit', async () => {
      const demo = await startDemoOnFreePorts(dir, ['--consul', consul.address]);
      try {
        // Consul runs the HTTP checks; until they pass the instances are critical and not served.
        await consul.runHttpChecks();
        const entries = (await (await fetch(`${consul.address}/v1/health/service/order-service?passing=1`)).json()) as {
          Service: { Meta: Record<string, string> };
        }[];
        assert.deepEqual(entries.map((e) => e.Service.Meta.zone).sort(), ['bj-a', 'sh-a', 'sh-b']);
        let served: Response | undefined;
        for (const deadline = performance.now() + 5000; performance.now() < deadline; ) {
          served = await fetch(`${demo.url}/api/order/7`, { headers: { 'x-region-id': 'bj-a' } });
          if (served.status === 200) break;
          await served.arrayBuffer();
        }
        assert.equal(served?.status, 200);
        assert.equal(((await served!.json()) as { zone: string }).zone, 'bj-a');
        assert.match(served!.headers.get('x-zonegate-upstream') ?? '', /@dc1$/);
      } finally {
        assert.equal(await stopDemo(demo), 0);
      }
      const left = (await (await fetch(`${consul.address}/v1/health/service/order-service`)).json()) as unknown[];
      assert.equal(left.length, 0, 'deregistered on exit');
    });
  });
});
