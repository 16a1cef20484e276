// The breakers as outlier detection, fed verdicts directly (no traffic): which rule opens a breaker, and how the
// ejection cap weighs a refused connection against a failure status.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema, type BreakerConfig } from '../../src/config/schema.ts';
import type { Verdict } from '../../src/core/failure.ts';
import type { Instance } from '../../src/discovery/instance.ts';
import { Registry } from '../../src/discovery/registry.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { Breakers, NOT_ADMITTED } from '../../src/resilience/breakers.ts';
import { Topology } from '../../src/topology.ts';
import { captureLog } from '../support/gateway.ts';

function settings(breaker: Record<string, unknown> = {}): BreakerConfig {
  return configSchema.parse({
    gateway: { zone: 'sh-a' },
    topology: { 'cn-east': { shanghai: ['sh-a'] } },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 'app', breaker }],
  }).routes[0]!.breaker;
}

/** `count` instances of `app` in sh-a, with their breakers. */
function fleet(count: number, breaker = settings()): { breakers: Breakers; registry: Registry; instances: () => Instance[]; judge: (index: number, verdict: Verdict) => Promise<unknown> | undefined } {
  const registry = new Registry(new Topology({ 'cn-east': { shanghai: ['sh-a'] } }));
  const specs = Array.from({ length: count }, (_, i) => ({
    id: `app-${i}`, service: 'app', host: '127.0.0.1', port: 9000 + i, zone: 'sh-a', weight: 1, tags: [], meta: {}, healthy: true,
  }));
  registry.replace('app', specs);
  const breakers = new Breakers(registry, createLogger({ destination: captureLog().stream }));
  breakers.configure(new Map([['app', breaker]]));
  const instances = (): Instance[] => [...registry.snapshot('app')!.instances];
  const judge = (index: number, verdict: Verdict): Promise<unknown> | undefined => {
    const instance = instances()[index]!;
    return breakers.record(instance, breakers.admit(instance, breaker), verdict);
  };
  return { breakers, registry, instances, judge };
}

describe('outlier detection', () => {
  it('opens after consecutiveLocalOriginFailures refused connects, without a volume threshold or window', async () => {
    const { breakers, instances, judge } = fleet(3);
    for (let i = 0; i < 50; i++) await judge(0, 'success');
    await judge(0, 'connect-failure');
    await judge(0, 'connect-failure');
    assert.equal(breakers.state(instances()[0]!), 'closed');
    await judge(0, 'connect-failure');
    assert.equal(breakers.state(instances()[0]!), 'open', '50 earlier successes in the window do not matter');
    breakers.close();
  });

  it('a success in between starts the count again', async () => {
    const { breakers, instances, judge } = fleet(3);
    for (const verdict of ['connect-failure', 'local-failure', 'success', 'local-failure', 'connect-failure'] as const) await judge(0, verdict);
    assert.equal(breakers.state(instances()[0]!), 'closed');
    await judge(0, 'local-failure');
    assert.equal(breakers.state(instances()[0]!), 'open');
    breakers.close();
  });

  it('opens after consecutive5xx failure statuses', async () => {
    const { breakers, instances, judge } = fleet(3);
    for (let i = 0; i < 4; i++) await judge(1, 'failure-status');
    assert.equal(breakers.state(instances()[1]!), 'closed');
    await judge(1, 'failure-status');
    assert.equal(breakers.state(instances()[1]!), 'open');
    breakers.close();
  });

  it('ejects every instance of a zone that refuses connections, whatever the ejection cap', async () => {
    const { breakers, registry, judge } = fleet(2, settings({ maxEjectionPercent: 10 }));
    for (let i = 0; i < 3; i++) await judge(0, 'connect-failure');
    for (let i = 0; i < 3; i++) await judge(1, 'connect-failure');
    assert.deepEqual([registry.isEjected('app-0'), registry.isEjected('app-1')], [true, true]);
    breakers.close();
  });

  it('keeps the cap for failure statuses: the second of two stays eligible (panic mode)', async () => {
    const { breakers, registry, instances, judge } = fleet(2, settings({ maxEjectionPercent: 10 }));
    for (let i = 0; i < 5; i++) await judge(0, 'failure-status');
    for (let i = 0; i < 5; i++) await judge(1, 'failure-status');
    assert.deepEqual([registry.isEjected('app-0'), registry.isEjected('app-1')], [true, false]);
    assert.equal(breakers.state(instances()[1]!), 'open');
    assert.notEqual(breakers.admit(instances()[1]!, settings({ maxEjectionPercent: 10 })), NOT_ADMITTED, 'panic mode lets its traffic through');
    // ... until it refuses connections: that is a fact the cap does not weigh
    for (let i = 0; i < 3; i++) await judge(1, 'connect-failure');
    assert.equal(registry.isEjected('app-1'), true);
    breakers.close();
  });

  it("counts successes in opossum's window: the failure share, not the failure count, opens it", async () => {
    const breaker = settings({ volumeThreshold: 10, errorThresholdPercentage: 50, consecutive5xx: 1000 });
    const { breakers, instances, judge } = fleet(2, breaker);
    for (let i = 0; i < 10; i++) await judge(0, 'success');
    for (let i = 0; i < 10; i++) await judge(0, 'failure-status');
    assert.equal(breakers.state(instances()[0]!), 'closed', '10 failures of 20 tries: 50% is not above 50%');
    await judge(0, 'failure-status');
    assert.equal(breakers.state(instances()[0]!), 'open', '11 of 21');
    breakers.close();
  });

  it('ignores the verdict of a try admitted before the breaker opened', async () => {
    const breaker = settings({ resetTimeout: '1m' });
    const { breakers, instances, judge } = fleet(2, breaker);
    const instance = instances()[0]!;
    const early = breakers.admit(instance, breaker);
    for (let i = 0; i < 3; i++) await judge(0, 'connect-failure');
    assert.equal(breakers.state(instance), 'open');
    await breakers.record(instance, early, 'success');
    assert.equal(breakers.state(instance), 'open');
    assert.equal(breakers.admit(instance, breaker), NOT_ADMITTED);
    breakers.close();
  });
});
