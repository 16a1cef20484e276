// What a supervisor sees: a `zonegate run` process restarted during a Consul outage with a bad snapshot file
// stays up (and would not be restarted into the same crash), answers its errors, and exits 0 on SIGTERM.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { afterEach, describe, test } from 'node:test';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { readyz, snapshotScratch } from '../support/consul-fixture-gateway.ts';
import { isStartedLine, launchGatewayProcess } from '../support/gateway-process.ts';

describe('a gateway process started in a Consul outage with a bad snapshot file', { timeout: 60_000 }, () => {
  let consul: ConsulFixture;
  let scratch: Awaited<ReturnType<typeof snapshotScratch>>;

  afterEach(async () => {
    await consul.close();
    await scratch.remove();
  });

  const cases = [
    { outage: 'answers 500', file: '{"orders":[null]}' },
    { outage: 'hangs', file: '{"orders":[{"id":"n/a1@dc1","service":"orders","host":"127.0' },
  ] as const;

  for (const { outage, file } of cases) {
    test(`Consul ${outage}, file ${JSON.stringify(file.slice(0, 24))}: stays up, serves its errors, exits 0`, async () => {
      consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
      if (outage === 'hangs') consul.faults.hang(true);
      else consul.faults.status500(true);
      scratch = await snapshotScratch();
      writeFileSync(scratch.file, file);
      const config: ConfigInput = {
        gateway: { zone: 'sh-a' },
        topology: { 'cn-east': { shanghai: ['sh-a'] } },
        discovery: { consul: { address: consul.address, datacenters: ['dc1', 'dc2'], snapshotFile: scratch.file, initialFetchTimeout: '300ms' } },
        routes: [{ name: 'orders', match: { prefix: '/' }, service: 'orders' }],
      };
      const gateway = await launchGatewayProcess(config);
      try {
        const started = await gateway.waitForLine(isStartedLine, 15_000, 'the start line');
        const ignored = await gateway.waitForLine((line) => String(line.msg).startsWith('snapshot file ignored'), 5000, 'the bad file logged');
        assert.equal(ignored.file, scratch.file);
        // a few failed rounds of the watch loop (a hung query has no next round before its 10 s timeout)
        if (outage === 'answers 500') await consul.waitForRequest((r) => r.seq >= 6, { timeoutMs: 10_000 });
        const ready = await readyz(`http://127.0.0.1:${started.admin.port}`);
        assert.equal(ready.status, 503);
        const res = await fetch(`http://127.0.0.1:${started.listen.port}/x`, { headers: { 'x-region-id': 'sh-a' } });
        assert.equal(res.status, 503);
        assert.equal(((await res.json()) as { error: string }).error, 'no_healthy_upstream');
        assert.equal(gateway.child.exitCode, null, 'still running');
      } finally {
        assert.equal(await gateway.stop(), 0, gateway.stderr());
      }
    });
  }
});
