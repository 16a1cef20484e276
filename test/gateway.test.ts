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
