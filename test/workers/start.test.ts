// A primary whose workers cannot bind the proxy address says why and exits 1, leaving no process behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ZONEGATE_BIN, zonegateEnv } from '../support/gateway-process.ts';
import { configInput, within } from '../support/http.ts';

test('workers that cannot bind the proxy address: the primary logs why and exits 1', { timeout: 60_000 }, async () => {
  const taken = createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const { port } = taken.address() as AddressInfo;
  const dir = await mkdtemp(join(tmpdir(), 'zonegate-workers-'));
  try {
    const file = join(dir, 'routes.yaml');
    const config = configInput({ services: { app: ['127.0.0.1:9'] }, routes: [{ name: 'app', match: { prefix: '/' }, service: 'app' }] });
    await writeFile(file, JSON.stringify({ ...config, gateway: { ...config.gateway, workers: 2, listen: `127.0.0.1:${port}`, admin: '127.0.0.1:0' } }));
    const child = spawn(ZONEGATE_BIN, ['run', '--config', file], { env: zonegateEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.resume();
    const [code] = (await within(once(child, 'exit'), 30_000, 'the primary to exit')) as [number];
    assert.equal(code, 1);
    const lines = stdout.trim().split('\n').map((line) => JSON.parse(line) as { msg: string; err?: string; pid?: number });
    assert.ok(lines.some((line) => line.msg === 'worker could not start' && /EADDRINUSE/.test(line.err!)), stdout);
    assert.ok(lines.some((line) => line.msg === 'zonegate could not start its workers'));
    const workerPids = new Set(lines.flatMap((line) => (line.pid === undefined ? [] : [line.pid])));
    assert.ok(workerPids.size > 0);
    for (const pid of workerPids) assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, `worker ${pid} is gone`);
  } finally {
    taken.close();
    await rm(dir, { recursive: true, force: true });
  }
});
