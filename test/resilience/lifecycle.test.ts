// Breakers live as long as their instances: 10k instances coming and going through discovery leave no
// breaker, no open-period timer and no ejection behind.
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { describe, it } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { loadConfigText } from '../../src/config/load.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import type { Verdict } from '../../src/core/failure.ts';
import type { Instance, InstanceSpec } from '../../src/discovery/instance.ts';
import { NOT_ADMITTED } from '../../src/resilience/breakers.ts';
import { failWith, requestUntil, stateOf, zonedGateway } from './support.ts';

const ROUNDS = 5;
const PER_ROUND = 2000;
/** of each round's instances, how many are used (get a breaker) and how many of those trip */
const USED = 1500;
const TRIPPED = 20;

function specs(round: number): InstanceSpec[] {
  return Array.from({ length: PER_ROUND }, (_, i) => ({
    id: `bulk/${round}-${String(i).padStart(5, '0')}`, // sorted like the snapshot sorts ids
    service: 'bulk',
    host: '127.0.0.1',
    port: 10_000 + i,
    zone: 'sh-a',
    weight: 1,
    tags: [],
    meta: {},
    healthy: true,
  }));
}

/**
 * Tracks the timers created until `stopCollecting` that are still alive (neither fired nor cleared); the
 * hook stays enabled until `stop`, so it still hears of those cleared later.
 */
function trackTimers(): { readonly live: Set<number>; stopCollecting(): void; stop(): void } {
  const live = new Set<number>();
  let creating = true;
  const hook = createHook({
    init(id, type) {
      if (creating && type === 'Timeout') live.add(id);
    },
    destroy(id) {
      live.delete(id);
    },
  });
  hook.enable();
  return {
    live,
    stopCollecting: () => void (creating = false),
    stop: () => void hook.disable(),
  };
}

describe('breaker lifecycle', () => {
  it(`disposes the breakers of ${ROUNDS * PER_ROUND} instances that come and go`, async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: { breaker: { volumeThreshold: 1, resetTimeout: '30s', maxEjectionPercent: 100 } },
    });
    const { breakers, registry } = zoned.gateway;
    const settings = zoned.gateway.config.routes[0]!.breaker;
    const judge = (instance: Instance, verdict: Verdict): Promise<unknown> | undefined =>
      breakers.record(instance, breakers.admit(instance, settings), verdict);

    for (let round = 0; round < ROUNDS; round++) {
      const instances = registry.replace('bulk', specs(round)).instances;
      const tripped = instances.slice(0, TRIPPED);
      const timers = trackTimers();
      t.after(() => timers.stop());
      for (const instance of tripped) await judge(instance, 'local-failure');
      for (const instance of instances.slice(TRIPPED, USED)) await judge(instance, 'success');
      timers.stopCollecting();
      assert.equal(breakers.size, USED, 'every used instance has a breaker, unused ones none');
      assert.ok(tripped.every((i) => breakers.state(i) === 'open' && registry.isEjected(i.id)));
      assert.ok(timers.live.size >= TRIPPED, 'each open breaker waits for its half-open on a timer');

      // The first half leaves (the tripped ones among them): only their breakers go.
      registry.replace('bulk', specs(round).slice(PER_ROUND / 2));
      assert.equal(breakers.size, USED - PER_ROUND / 2);
      assert.ok(tripped.every((i) => !registry.isEjected(i.id)), 'a departed instance is no longer ejected');
      registry.replace('bulk', []);
      assert.equal(breakers.size, 0);
      await nextTurn();
      timers.stop();
      assert.deepEqual([...timers.live], [], `round ${round}: open-period timers left behind`);
    }
    assert.equal(registry.snapshot('bulk')!.instances.length, 0);
  });

  it(
    'disposes the breakers of a service a reload removes',
    async (t) => {
      const zoned = await zonedGateway(t, {
        services: { app: { 'sh-a': 1 }, other: { 'sh-a': 1 } },
        routes: [
          { name: 'other', match: { prefix: '/other' }, service: 'other' },
          { name: 'app', match: { prefix: '/' }, service: 'app' },
        ],
      });
      for (const path of ['/other', '/']) assert.equal((await zoned.client.request({ path })).status, 200);
      assert.equal(zoned.gateway.breakers.size, 2);

      const input = JSON.parse(zoned.yaml) as ConfigInput;
      delete input.discovery!.static!.other;
      input.routes = input.routes.filter((route) => route.service !== 'other');
      const config = loadConfigText(JSON.stringify(input), 'reloaded.yaml', {});
      config.gateway.listen = zoned.gateway.config.gateway.listen;
      config.gateway.admin = zoned.gateway.config.gateway.admin;
      zoned.gateway.reload(config);
      assert.equal(zoned.gateway.registry.snapshot('other'), undefined);
      assert.equal(zoned.gateway.breakers.size, 1, "the removed service's breaker is disposed");
    },
  );
});

describe('breaker settings', () => {
  const LENIENT = { volumeThreshold: 100, errorThresholdPercentage: 50, resetTimeout: '10s', consecutive5xx: 1000 };
  const STRICT = { volumeThreshold: 3, errorThresholdPercentage: 50, resetTimeout: '10s', consecutive5xx: 1000 };

  it('that a reload changes apply to instances whose breaker already exists', async (t) => {
    const zoned = await zonedGateway(t, { services: { app: { 'sh-a': 2 } }, route: { retries: { maxRetries: 0 }, breaker: LENIENT } });
    const [bad] = zoned.ids();
    // least-request balancing picks at random among idle instances: ask until both have served once
    await requestUntil(zoned, () => zoned.gateway.breakers.size === 2, {}, 50);

    const before = zoned.gateway.config.routes[0]!.breaker;
    const input = JSON.parse(zoned.yaml) as ConfigInput;
    input.routes = input.routes.map((route) => ({ ...route, breaker: STRICT }));
    const config = loadConfigText(JSON.stringify(input), 'reloaded.yaml', {});
    assert.equal(await zoned.gateway.reload(config), true);

    await failWith(zoned.upstreams.get(bad!)!, '503');
    // 3 failures trip it now; under the old settings 100 were needed
    const replies = await requestUntil(zoned, () => stateOf(zoned, bad!) === 'open', {}, 20);
    assert.ok(replies.filter((reply) => reply.status === 503).length <= STRICT.volumeThreshold);

    // A request that began before the reload still carries the old settings: it must not rebuild the breaker
    // (which would readmit the ejected instance), only meet it open.
    const instance = zoned.gateway.registry.snapshot('app')!.instances.find((i) => i.id === bad)!;
    assert.equal(zoned.gateway.breakers.admit(instance, before), NOT_ADMITTED);
    assert.equal(stateOf(zoned, bad!), 'open');
    assert.ok(zoned.gateway.registry.isEjected(bad!));
  });

  it('of a service shared by routes are those of the first route in file order, whichever sends', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2 } },
      routes: [
        { name: 'lenient', match: { prefix: '/lenient' }, service: 'app', retries: { maxRetries: 0 }, breaker: LENIENT },
        { name: 'strict', match: { prefix: '/' }, service: 'app', retries: { maxRetries: 0 }, breaker: STRICT },
      ],
    });
    const [bad] = zoned.ids();
    await failWith(zoned.upstreams.get(bad!)!, '503');
    // Only the second route sends; its own settings would trip the breaker after 3 failures.
    const replies = await zoned.client.sequential(20, () => ({ path: '/x' }));
    assert.ok(replies.filter((reply) => reply.status === 503).length >= STRICT.volumeThreshold, 'the instance failed often enough');
    assert.equal(stateOf(zoned, bad!), 'closed', "the first route's volumeThreshold (100) governs the instance");
  });
});
