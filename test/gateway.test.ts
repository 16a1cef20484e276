// The gateway loads the Redis and Consul clients only for configs that use them.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

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
