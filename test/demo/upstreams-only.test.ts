// `zonegate demo --upstreams-only`: the demo's instances without the gateway, registered in Consul (what each
// datacenter's instances container of docker-compose.yml runs).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { ZONEGATE_BIN, zonegateEnv } from '../support/gateway-process.ts';
import { configYaml, pollUntil, refusedPort, send, within } from '../support/http.ts';

describe('zonegate demo --upstreams-only', () => {
  let dir: string;
  let consul: ConsulFixture;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zonegate-upstreams-'));
    consul = await startConsulFixture();
  });
  after(async () => {
    await consul.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves and registers the instances of its config, starts no gateway, deregisters them on SIGTERM', async (t) => {
    const ports = [await refusedPort(), await refusedPort()];
    const config = join(dir, 'instances.yaml');
    const routes = [{ name: 'orders', match: { prefix: '/' }, service: 'order-service' }];
    await writeFile(config, configYaml({ services: { 'order-service': ports.map((port) => `127.0.0.1:${port}`) }, routes }));
    const child = spawn(ZONEGATE_BIN, ['demo', '--upstreams-only', '--config', config, '--consul', consul.address], {
      env: zonegateEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = once(child, 'exit');
    t.after(() => child.kill('SIGKILL'));
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await pollUntil(() => stderr.includes('zonegate demo instances are up') || undefined, 15_000, 'the instances to be up');

    await consul.runHttpChecks();
    const passing = (await (await fetch(`${consul.address}/v1/health/service/order-service?passing=1`)).json()) as { Service: { Port: number } }[];
    assert.deepEqual(passing.map((entry) => entry.Service.Port).sort(), [...ports].sort());
    const reply = await send(`http://127.0.0.1:${ports[0]}`, { path: '/api/order/7' });
    assert.equal((JSON.parse(reply.body.toString()) as { service: string }).service, 'order-service');
    assert.equal(stdout, '', 'no gateway: no log lines');

    child.kill('SIGTERM');
    assert.deepEqual(await within(exited, 10_000, 'the instances to stop'), [0, null]);
    const left = (await (await fetch(`${consul.address}/v1/health/service/order-service`)).json()) as unknown[];
    assert.equal(left.length, 0, 'deregistered on exit');
  });
});
