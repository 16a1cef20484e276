// The gateway loads the Redis and Consul clients only for configs that use them, applies reloads in order,
// and drains without waiting out keep-alive connections.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it, type TestContext } from 'node:test';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { loadConfigText } from '../src/config/load.ts';
import { Gateway } from '../src/gateway.ts';
import { createLogger } from '../src/observability/logger.ts';
import { captureLog, startGateway, type TestGateway } from './support/gateway.ts';
import { configYaml, pollUntil } from './support/http.ts';
import { startUpstream } from './support/upstream.ts';

const run = promisify(execFile);

/** Starts a gateway in a fresh process and reports which optional clients were loaded. */
async function loadedClients(extraYaml: string, consul = ''): Promise<{ ioredis: boolean; consul: boolean }> {
  const script = `
    import { createRequire } from 'node:module';
    import { loadConfigText } from './src/config/load.ts';
    import { Gateway } from './src/gateway.ts';
    import { createLogger } from './src/observability/logger.ts';
    const yaml = ${JSON.stringify(`gateway: { zone: sh-a, listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
topology: { r: { c: [sh-a] } }
discovery: { ${consul} static: { svc: [{ address: 127.0.0.1:9, zone: sh-a }] } }
routes: [{ name: all, match: { prefix: / }, service: svc }]
${extraYaml}`)};
    const gateway = await Gateway.start(loadConfigText(yaml, 'routes.yaml', {}), { logger: createLogger({ level: 'silent' }) });
    const loaded = Object.keys(createRequire(import.meta.url).cache);
    await gateway.stop();
    console.log(JSON.stringify({
      ioredis: loaded.some((path) => path.includes('/node_modules/ioredis/')),
      consul: loaded.some((path) => path.includes('/node_modules/consul/')),
    }));`;
  const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { ioredis: boolean; consul: boolean };
}

describe('optional clients', { timeout: 30_000 }, () => {
  it('loads neither ioredis nor consul for a static config without redis', async () => {
    assert.deepEqual(await loadedClients(''), { ioredis: false, consul: false });
  });

  it('loads ioredis when redis is configured, consul when discovery.consul is', async () => {
    assert.deepEqual(await loadedClients('redis: { url: redis://127.0.0.1:6379, keyPrefix: zg-optional-test }'), {
      ioredis: true,
      consul: false,
    });
    // An unreachable Consul is fine here: the gateway serves its static service and only the module load is checked.
    assert.deepEqual(await loadedClients('', 'consul: { address: http://127.0.0.1:9 },'), { ioredis: false, consul: true });
  });
});

describe('reload order', { timeout: 30_000 }, () => {
  it('a config that waited for its Redis client to load never replaces a newer config', async () => {
    // A fresh process, so the first config with `redis` has to load ioredis before it can apply.
    const script = `
      import { Writable } from 'node:stream';
      import { loadConfigText } from './src/config/load.ts';
      import { Gateway } from './src/gateway.ts';
      import { createLogger } from './src/observability/logger.ts';
      const base = (route, extra) => \`gateway: { zone: sh-a, listen: 127.0.0.1:0, admin: 127.0.0.1:0 }
topology: { r: { c: [sh-a] } }
discovery: { static: { svc: [{ address: 127.0.0.1:9, zone: sh-a }] } }
routes: [{ name: \${route}, match: { prefix: / }, service: svc }]
\${extra}\`;
      let superseded;
      const settled = new Promise((resolve) => (superseded = resolve));
      const destination = new Writable({ write(chunk, _encoding, done) { if (String(chunk).includes('superseded')) superseded(); done(); } });
      const gateway = await Gateway.start(loadConfigText(base('v1', ''), 'routes.yaml', {}), { logger: createLogger({ destination, accessFlushMs: 0 }) });
      gateway.reload(loadConfigText(base('v2', 'redis: { url: redis://127.0.0.1:6379, keyPrefix: zg-reload-order-test }'), 'routes.yaml', {}));
      gateway.reload(loadConfigText(base('v3', ''), 'routes.yaml', {}));
      await Promise.race([settled, new Promise((resolve) => setTimeout(resolve, 5000))]);
      const route = gateway.config.routes[0].name;
      await gateway.stop();
      console.log(JSON.stringify({ route }));`;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)!), { route: 'v3' });
  });
});

describe('drain', { timeout: 30_000 }, () => {
  const DRAIN_TIMEOUT_MS = 5000;
  const UPSTREAM_DELAY_MS = 300;

  async function slowGateway(t: TestContext): Promise<{ gateway: TestGateway; arrived: (path: string) => Promise<true> }> {
    const upstream = await startUpstream('slow', (req, res) => {
      req.resume();
      setTimeout(() => res.writeHead(200, { 'content-length': 2 }).end('ok'), UPSTREAM_DELAY_MS);
    });
    const gateway = await startGateway(
      configYaml({ services: { app: [upstream.address] }, routes: [{ name: 'app', match: { prefix: '/' }, service: 'app' }], gateway: { drainTimeout: `${DRAIN_TIMEOUT_MS}ms` } }),
    );
    t.after(async () => {
      await gateway.close();
      await upstream.close();
    });
    const arrived = (path: string): Promise<true> =>
      pollUntil(() => (upstream.requests.some((seen) => seen.url === path) ? true : undefined), 2000, `${path} reaching the upstream`);
    return { gateway, arrived };
  }

  it('finishes as soon as the requests in flight are answered, though their connections were kept alive', async (t) => {
    const { gateway, arrived } = await slowGateway(t);
    const agent = new Agent({ connections: 2, keepAliveTimeout: 60_000 });
    t.after(() => agent.close());
    await (await request(`${gateway.url}/warm`, { dispatcher: agent })).body.text();
    const inFlight = request(`${gateway.url}/slow`, { dispatcher: agent }).then(async (response) => ({ status: response.statusCode, body: await response.body.text() }));
    await arrived('/slow');
    const started = performance.now();
    await gateway.close();
    const elapsed = performance.now() - started;
    assert.deepEqual(await inFlight, { status: 200, body: 'ok' });
    assert.ok(elapsed < DRAIN_TIMEOUT_MS / 2, `stop took ${elapsed.toFixed(0)} ms (drain timeout ${DRAIN_TIMEOUT_MS} ms)`);
  });

  it('forgets its drain deadline once stopped: nothing of it runs later', async (t) => {
    const upstream = await startUpstream('app');
    const drainMs = 200;
    const gateway = await startGateway(
      configYaml({ services: { app: [upstream.address] }, routes: [{ name: 'app', match: { prefix: '/' }, service: 'app' }], gateway: { drainTimeout: `${drainMs}ms` } }),
    );
    t.after(() => upstream.close());
    await gateway.close();
    // Nothing announces that a timer did not fire: wait well past when it would have.
    await new Promise((resolve) => setTimeout(resolve, drainMs * 3));
    assert.deepEqual(gateway.log.lines.filter((line) => String(line.msg).startsWith('drain timeout')), []);
  });

  it('closes a kept-alive connection after the response in flight at the drain, unanswered requests behind it unprocessed', async (t) => {
    const { gateway, arrived } = await slowGateway(t);
    const { port } = new URL(gateway.url);
    const socket = connect(Number(port), '127.0.0.1');
    await once(socket, 'connect');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.write('GET /first HTTP/1.1\r\nHost: gw\r\n\r\n');
    await arrived('/first');
    const stopped = gateway.close();
    socket.write('GET /second HTTP/1.1\r\nHost: gw\r\n\r\n');
    await once(socket, 'close');
    await stopped;
    const heads = [...Buffer.concat(received).toString('latin1').matchAll(/HTTP\/1\.1 \d{3}[^]*?\r\n\r\n/g)].map((match) => match[0]);
    // The response written after the signal says close; a request sent behind it is not processed (RFC 9112 §9.6:
    // the client knows to send it again elsewhere), so nothing is left for the connection to carry.
    assert.equal(heads.length, 1, `one response: ${JSON.stringify(heads)}`);
    assert.match(heads[0]!, /^HTTP\/1\.1 200[\s\S]*\r\nconnection: close/i);
    assert.deepEqual(gateway.log.lines.filter((line) => line.msg === 'access' && line.path === '/second'), []);
  });
});

describe('start', { timeout: 30_000 }, () => {
  it('that fails to bind a listener releases what it had started, so the process can end', async () => {
    // The proxy listener binds; the admin port is held by another server.
    const script = `
      import { createServer } from 'node:net';
      import { loadConfigText } from './src/config/load.ts';
      import { Gateway } from './src/gateway.ts';
      import { createLogger } from './src/observability/logger.ts';
      const holder = createServer().listen(0, '127.0.0.1');
      await new Promise((resolve) => holder.once('listening', resolve));
      const yaml = \`gateway: { zone: sh-a, listen: "127.0.0.1:0", admin: "127.0.0.1:\${holder.address().port}" }
topology: { r: { c: [sh-a] } }
discovery: { static: { svc: [{ address: 127.0.0.1:9, zone: sh-a }] } }
routes: [{ name: all, match: { prefix: / }, service: svc }]\`;
      const failure = await Gateway.start(loadConfigText(yaml, 'routes.yaml', {}), { logger: createLogger({ level: 'silent' }) }).then(() => 'started', (err) => err.code);
      holder.close();
      console.log(JSON.stringify({ failure }));`;
    // Without the cleanup the bound proxy listener keeps the process alive and this times out.
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], { timeout: 15_000 });
    assert.deepEqual(JSON.parse(stdout.trim().split('\n').at(-1)!), { failure: 'EADDRINUSE' });
  });
});

describe('reload', { timeout: 30_000 }, () => {
  const yaml = (routes: string, extra = ''): string => `gateway: { zone: sh-a, listen: 127.0.0.1:0, admin: 127.0.0.1:0 ${extra} }
topology: { r: { c: [sh-a] } }
discovery: { static: { one: [{ address: 127.0.0.1:9, zone: sh-a }], two: [{ address: 127.0.0.1:9, zone: sh-a }] } }
routes: [${routes}]`;

  it('that fails part way leaves the running config whole', async (t) => {
    const gateway = await startGateway(yaml('{ name: one, match: { prefix: /one }, service: one }, { name: two, match: { prefix: /two }, service: two }'));
    t.after(() => gateway.close());
    const before = [...gateway.gateway.registry.services()];
    // The Consul client is built from CONSUL_HTTP_ADDR when the section names no address: an unusable one fails the
    // reload after the config itself was accepted.
    const saved = process.env.CONSUL_HTTP_ADDR;
    process.env.CONSUL_HTTP_ADDR = 'http://[not an address';
    t.after(() => (saved === undefined ? delete process.env.CONSUL_HTTP_ADDR : (process.env.CONSUL_HTTP_ADDR = saved)));
    const next = loadConfigText(
      yaml('{ name: one, match: { prefix: /one }, service: one }').replace('discovery: {', 'discovery: { consul: {},').replace(/, two: \[[^\]]*\]/, ''),
      'routes.yaml',
      {},
    );
    gateway.gateway.reload(next);
    await gateway.log.waitFor((line) => String(line.msg).startsWith('config reload failed'));
    assert.deepEqual(gateway.gateway.config.routes.map((route) => route.name), ['one', 'two']);
    assert.deepEqual([...gateway.gateway.registry.services()].sort(), [...before].sort(), 'the services of the running routes are all still there');
    assert.equal(gateway.gateway.consul, undefined);
  });

  it('cannot leave an admin listener on all interfaces without its token', async (t) => {
    const token = 'admin-secret';
    const config = loadConfigText(yaml('{ name: one, match: { prefix: / }, service: one }', `, adminToken: ${token}`), 'routes.yaml', {});
    config.gateway.admin = { host: '0.0.0.0', port: 0 };
    const { stream, capture } = captureLog();
    const gateway = await Gateway.start(config, { logger: createLogger({ destination: stream, level: 'debug', accessFlushMs: 0 }) });
    t.after(() => gateway.stop());
    const admin = `http://127.0.0.1:${gateway.adminAddress.port}/admin/routes`;
    assert.equal((await request(admin)).statusCode, 401);
    // The new file moves the admin listener to loopback and drops the token: only the second part could apply now.
    gateway.reload(loadConfigText(yaml('{ name: one, match: { prefix: / }, service: one }'), 'routes.yaml', {}));
    const failed = await capture.waitFor((line) => String(line.msg).startsWith('config reload failed'));
    assert.match(String(failed.err), /reachable from other hosts/);
    const response = await request(admin);
    await response.body.dump();
    assert.equal(response.statusCode, 401, 'the token still guards the listener bound to all interfaces');
    assert.equal(gateway.config.gateway.adminToken, token);
  });
});
