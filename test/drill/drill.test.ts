// `zonegate drill` on a small fleet of its own (three simulated instances in sh-a, sh-b and bj-a), with short
// phases at a modest rate: a killed instance costs clients nothing and its traffic comes back after the breaker's
// reset; a route that aborts everything for 2 s costs about rate × 2 s errors and an RTO of about 2 s; the command
// prints the table, writes a self-contained HTML page and exits 1 when a target is missed.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadConfigText } from '../../src/config/load.ts';
import { LocalFleet } from '../../src/drill/fleet.ts';
import { runScenario, type DrillOptions } from '../../src/drill/run.ts';
import { SCENARIOS } from '../../src/drill/scenarios.ts';
import { ZONEGATE_BIN, zonegateEnv } from '../support/gateway-process.ts';
import { FLEET_YAML } from './support.ts';

const RATE = 50;
const OPTIONS: DrillOptions = { rate: RATE, beforeMs: 1000, duringMs: 2000, afterMs: 2000, path: '/api/x', method: 'GET', timeoutMs: 5000 };
const KILLED = { ...OPTIONS, afterMs: 3000 };
const scenario = (name: string) => SCENARIOS.find((candidate) => candidate.name === name)!;

describe('zonegate drill', { timeout: 120_000 }, () => {
  let fleet: LocalFleet;
  before(async () => {
    fleet = await LocalFleet.start(loadConfigText(FLEET_YAML, 'routes.yaml', {}));
  });
  after(() => fleet.close());

  it('instance-killed: no client error, traffic left at once and came back after the breaker reset', async () => {
    const result = await runScenario(fleet, scenario('instance-killed'), KILLED);
    assert.equal(result.failedToRun, undefined);
    const m = result.measurement!;
    assert.match(result.what!, /^app@127\.0\.0\.1:\d+$/);
    assert.equal(m.errorCount, 0, JSON.stringify(m.errors));
    assert.ok(m.requests >= RATE * 5, `${m.requests} requests`);
    assert.equal(m.leftAfterMs, 0, 'a killed instance receives nothing');
    // each failed probe keeps the breaker open longer (500 ms, 1 s, 1.5 s …): back within the after phase
    assert.ok(m.backAfterMs !== null && m.backAfterMs < KILLED.afterMs, `back after ${m.backAfterMs} ms`);
    assert.ok(m.rtoMs < 1000, `RTO ${m.rtoMs} ms`);
    const { faultAt, repairAt } = result.phases!;
    const tiers = (from: number, to: number): Set<string> =>
      new Set(m.timeline.filter((bin) => bin.at >= from && bin.at + m.binMs <= to).flatMap((bin) => Object.keys(bin.tiers)));
    assert.deepEqual(tiers(0, faultAt), new Set(['zone']), 'sh-a served before');
    assert.deepEqual(tiers(faultAt + m.binMs, repairAt), new Set(['city']), 'sh-b served while sh-a was down');
  });

  it('route-abort for 2 s at 50/s: about 100 errors, all 503 fault_injected, RTO about 2 s; breakers stay closed', async () => {
    const result = await runScenario(fleet, scenario('route-abort'), OPTIONS);
    assert.equal(result.failedToRun, undefined);
    const m = result.measurement!;
    assert.deepEqual(Object.keys(m.errors), ['503 fault_injected']);
    // the phases as they really ran (a loaded machine stretches a 2 s sleep): the load is count-based, so the
    // errors are the rate times the fault's length, give or take the admin calls that set and clear it
    const lasted = result.phases!.repairAt - result.phases!.faultAt;
    const expected = (RATE * lasted) / 1000;
    assert.ok(Math.abs(m.errorCount - expected) <= expected * 0.15, `${m.errorCount} errors, expected about ${expected}`);
    assert.ok(m.rtoMs >= lasted - 100 && m.rtoMs <= lasted + 500, `RTO ${m.rtoMs} ms for a ${lasted} ms fault`);
    // after the repair every request is served by the zone again: no breaker opened on the injected 503s
    const afterRepair = m.timeline.filter((bin) => bin.at >= result.phases!.repairAt + 250);
    assert.ok(afterRepair.every((bin) => bin.errors === 0 && Object.keys(bin.tiers).join() === 'zone'), JSON.stringify(afterRepair));
  });

  it('the command: a table, a self-contained HTML report, exit 1 when a target is missed and 0 when all are met', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-drill-'));
    try {
      await writeFile(join(dir, 'routes.yaml'), FLEET_YAML);
      const report = join(dir, 'report.html');
      const args = ['drill', '--config', join(dir, 'routes.yaml'), '--rate', '20', '--before', '500ms', '--during', '1s', '--after', '1s', '--path', '/api/x'];
      const run = promisify(execFile);
      const missed = await run(ZONEGATE_BIN, [...args, '--scenario', 'instance-503,route-abort', '--max-errors', '0', '--report', report], { env: zonegateEnv() }).then(
        () => assert.fail('a missed target exits 1'),
        (err: { code: number; stdout: string }) => err,
      );
      assert.equal(missed.code, 1);
      assert.match(missed.stdout, /^instance-503 +app@127\.0\.0\.1:\d+ +\d+ +0 .* met$/m);
      assert.match(missed.stdout, /^route-abort +route app +\d+ +\d+ \(503 fault_injected: \d+\) .* missed: \d+ errors > 0$/m);
      const html = await readFile(report, 'utf8');
      assert.match(html, /^<!doctype html>/);
      assert.equal((html.match(/<svg /g) ?? []).length, 2, 'a timeline per scenario');
      assert.match(html, /<polyline[^>]+stroke="#c62828"/, 'errors drawn');
      assert.doesNotMatch(html, /https?:|<script|<link|src=|url\(/, 'self-contained: nothing loaded from anywhere');

      const met = await run(ZONEGATE_BIN, [...args, '--scenario', 'zone-dark', '--max-errors', '0', '--max-rto', '1s', '--report', report], { env: zonegateEnv() });
      assert.match(met.stdout, /^zone-dark +zone sh-a .* met$/m);

      const unknown = await run(ZONEGATE_BIN, [...args, '--scenario', 'redis-unavailable'], { env: zonegateEnv() }).catch((err: { code: number; stderr: string }) => err);
      assert.equal((unknown as { code: number }).code, 2);
      assert.match((unknown as { stderr: string }).stderr, /redis-unavailable cannot run here: needs redis/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
