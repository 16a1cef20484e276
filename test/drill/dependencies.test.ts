// The drill's Consul and Redis scenarios, available only when the fleet reaches them (a relay it can cut): with
// --consul the simulated instances are registered in that Consul (here the Consul-API fixture) and discovered from
// it; with redis.url in the config, the route's rate limit uses it. Losing either costs clients nothing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { LocalFleet } from '../../src/drill/fleet.ts';
import { runScenario, type DrillOptions } from '../../src/drill/run.ts';
import { SCENARIOS } from '../../src/drill/scenarios.ts';
import { startConsulFixture } from '../support/consul-fixture.ts';
import { deleteKeys, inspectRedis, SHARED_REDIS_URL, uniqueKeyPrefix } from '../support/redis.ts';
import { FLEET_YAML } from './support.ts';

const OPTIONS: DrillOptions = { rate: 40, beforeMs: 800, duringMs: 1500, afterMs: 1000, path: '/api/x', method: 'GET', timeoutMs: 5000 };
const scenario = (name: string) => SCENARIOS.find((candidate) => candidate.name === name)!;

describe('drill scenarios on dependencies', { timeout: 60_000 }, () => {
  it('without Consul or Redis they are unavailable, and say why', async (t) => {
    const fleet = await LocalFleet.start(loadConfigText(FLEET_YAML, 'routes.yaml', {}));
    t.after(() => fleet.close());
    assert.match(scenario('consul-unavailable').unavailable(fleet) ?? '', /needs --consul/);
    assert.match(scenario('redis-unavailable').unavailable(fleet) ?? '', /needs redis\.url/);
    const skipped = await runScenario(fleet, scenario('redis-unavailable'), OPTIONS);
    assert.match(skipped.skipped ?? '', /needs redis/);
  });

  it('redis-unavailable: the rate-limited route keeps serving without a single error', async (t) => {
    const prefix = uniqueKeyPrefix('drill');
    // a deep bucket refilled slowly: never empty here, and its key outlives the scenario (it expires once refilled)
    const yaml = `${FLEET_YAML}    rateLimit: { key: route, rate: 600/m, burst: 100000 }\nredis: { url: "${SHARED_REDIS_URL}", keyPrefix: ${prefix} }\n`;
    const fleet = await LocalFleet.start(loadConfigText(yaml, 'routes.yaml', {}));
    const redis = await inspectRedis(SHARED_REDIS_URL);
    t.after(async () => {
      await fleet.close();
      await deleteKeys(redis, `${prefix}-drill`);
      redis.disconnect();
    });
    assert.equal(scenario('redis-unavailable').unavailable(fleet), undefined);
    const result = await runScenario(fleet, scenario('redis-unavailable'), OPTIONS);
    assert.equal(result.failedToRun, undefined);
    assert.equal(result.what, 'Redis');
    assert.equal(result.measurement!.errorCount, 0, JSON.stringify(result.measurement!.errors));
    assert.ok((await redis.keys(`${prefix}-drill:*`)).length > 0, 'the buckets lived in Redis, under a prefix of the drill\'s own');
  });

  it('consul-unavailable: with --consul, the last known instances keep serving without a single error', async (t) => {
    const consul = await startConsulFixture();
    t.after(() => consul.close());
    // the fixture runs HTTP checks when told (a Consul agent, every interval): until they pass the instances are
    // critical, and the fleet waits for them
    const checks = setInterval(() => void consul.runHttpChecks().catch(() => {}), 200);
    t.after(() => clearInterval(checks));
    const fleet = await LocalFleet.start(loadConfigText(FLEET_YAML, 'routes.yaml', {}), { consul: consul.address });
    t.after(() => fleet.close());
    assert.deepEqual(fleet.notes, []);
    assert.equal(scenario('consul-unavailable').unavailable(fleet), undefined);
    const result = await runScenario(fleet, scenario('consul-unavailable'), OPTIONS);
    assert.equal(result.failedToRun, undefined);
    assert.equal(result.what, 'Consul');
    assert.equal(result.measurement!.errorCount, 0, JSON.stringify(result.measurement!.errors));
    const tiers = new Set(result.measurement!.timeline.flatMap((bin) => Object.keys(bin.tiers)));
    assert.deepEqual(tiers, new Set(['zone']), 'sh-a served throughout');
  });
});
