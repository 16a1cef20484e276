// Per-instance breakers end to end: an instance that fails trips its breaker after `volumeThreshold`
// failures and is ejected (no more traffic); after `resetTimeout` one probe decides between closing and
// a longer open period (a call sent before the breaker opened does not count as one); answers that say nothing about the instance's health (4xx, 429, a client that
// goes away) never trip it.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { pollUntil } from '../support/http.ts';
import { echo } from '../support/upstream.ts';
import {
  accessLines,
  answer,
  failWith,
  received,
  recover,
  requestUntil,
  stateOf,
  triesOf,
  waitForState,
  zonedGateway,
  type FailureMode,
} from './support.ts';

const VOLUME = 5;

describe('breaker trip and ejection', () => {
  for (const mode of ['503', 'refuse'] as const satisfies readonly FailureMode[]) {
    // refused connects trip it after consecutiveLocalOriginFailures (3), failure statuses after consecutive5xx (5)
    const TRIP = mode === 'refuse' ? 3 : 5;
    it(`ejects an instance after ${TRIP} failures (${mode}) and sends it nothing more`, async (t) => {
      // No retries: each failure reaches the client, so the access line of every attempt shows its breaker.
      const zoned = await zonedGateway(t, {
        services: { app: { 'sh-a': 3 } },
        route: { retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, errorThresholdPercentage: 50, resetTimeout: '10s' } },
      });
      const [bad, ...good] = zoned.ids();
      await failWith(zoned.upstreams.get(bad!)!, mode);

      const replies = await requestUntil(zoned, () => stateOf(zoned, bad!) === 'open');
      const lines = await accessLines(zoned, replies);
      const onBad = lines.filter((line) => triesOf(line)[0] === bad);
      assert.equal(onBad.length, TRIP, 'the breaker opens on the failure that reaches the threshold');
      assert.deepEqual(
        onBad.map((line) => line.breaker),
        [...Array<string>(TRIP - 1).fill('closed'), 'open'],
        'the failure that trips it logs breaker "open"; the ones before, "closed"',
      );
      for (const line of onBad) assert.equal(line.status, mode === '503' ? 503 : 502);
      for (const line of lines.filter((l) => triesOf(l)[0] !== bad)) {
        assert.equal(line.status, 200);
        assert.equal(line.breaker, 'closed');
      }
      if (mode === '503') assert.equal(received(zoned, bad!), TRIP, 'the upstream saw exactly the tripping failures');
      assert.deepEqual(zoned.ids().filter((id) => zoned.gateway.registry.isEjected(id)), [bad]);

      const after = await zoned.client.sequential(30, () => ({}));
      assert.deepEqual(after.map((r) => r.status), Array<number>(30).fill(200));
      assert.ok(after.every((r) => good.includes(r.upstream)), 'an ejected instance serves nothing');
      if (mode === '503') assert.equal(received(zoned, bad!), TRIP, 'no request reached the ejected instance');
      assert.equal(stateOf(zoned, bad!), 'open');
    });
  }
});

describe('rolling window', () => {
  it('forgets failures older than rollingCountTimeout', async (t) => {
    const WINDOW_MS = 300;
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: {
        retries: { maxRetries: 0 },
        // only the rolling window's rule here: failures in a row never trip it
        breaker: { volumeThreshold: VOLUME, rollingCountTimeout: `${WINDOW_MS}ms`, resetTimeout: '10s', maxEjectionPercent: 100, consecutive5xx: 1000 },
      },
    });
    const [only] = zoned.ids() as [string];
    await failWith(zoned.upstreams.get(only)!, '503');
    await zoned.client.sequential(VOLUME - 1, () => ({}));
    assert.equal(stateOf(zoned, only), 'closed', 'fewer failures than volumeThreshold');

    // Two windows later, those failures have rotated out: one more is again below volumeThreshold.
    await sleep(WINDOW_MS * 2);
    await zoned.client.request();
    assert.equal(stateOf(zoned, only), 'closed', 'failures from an earlier window still counted');
    await zoned.client.sequential(VOLUME - 1, () => ({}));
    assert.equal(stateOf(zoned, only), 'open', 'volumeThreshold failures within one window trip it');
  });
});

describe('half-open probe', () => {
  const RESET_MS = 250;

  async function trippedPair(t: TestContext) {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 2 } },
      route: { retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, resetTimeout: `${RESET_MS}ms` } },
    });
    const [bad, good] = zoned.ids() as [string, string];
    await failWith(zoned.upstreams.get(bad)!, '503');
    await requestUntil(zoned, () => stateOf(zoned, bad) === 'open');
    return { zoned, bad, good };
  }

  it('lets one probe through, closes when it succeeds, and the instance gets traffic again', async (t) => {
    const { zoned, bad, good } = await trippedPair(t);
    await waitForState(zoned, bad, 'half-open', RESET_MS * 4);
    assert.equal(zoned.gateway.registry.isEjected(bad), false, 'half-open readmits the instance for its probe');

    // The recovered instance holds its first request (the probe) until 19 others have been served.
    const release = Promise.withResolvers<void>();
    const recovered = echo(bad);
    zoned.upstreams.get(bad)!.handle((req, res) => void release.promise.then(() => recovered(req, res)));
    const [badBefore, goodBefore] = [received(zoned, bad), received(zoned, good)];
    const batch = zoned.client.many(20, () => ({}), 20);
    await pollUntil(() => (received(zoned, good) === goodBefore + 19 ? true : undefined), 3000, 'the other requests to be served');
    assert.equal(received(zoned, bad), badBefore + 1, 'while its probe is out, nothing else reaches the instance');
    assert.equal(stateOf(zoned, bad), 'half-open');
    release.resolve();
    assert.ok((await batch).every((r) => r.status === 200));
    assert.equal(stateOf(zoned, bad), 'closed');

    const replies = await zoned.client.sequential(40, () => ({}));
    assert.ok(replies.every((r) => r.status === 200));
    assert.ok(replies.some((r) => r.upstream === bad), 'traffic returns to the recovered instance');
  });

  it('re-opens after a failed probe, for a longer open period', async (t) => {
    const { zoned, bad } = await trippedPair(t);
    const firstOpen = await waitForState(zoned, bad, 'half-open', RESET_MS * 4);
    const before = received(zoned, bad);
    const probe = await requestUntil(zoned, () => stateOf(zoned, bad) !== 'half-open');
    assert.equal(stateOf(zoned, bad), 'open', 'a failed probe opens the breaker again');
    assert.equal(received(zoned, bad), before + 1, 'one probe only');
    assert.equal(probe.at(-1)!.status, 503);
    assert.equal(zoned.gateway.registry.isEjected(bad), true);

    // The second open period is 2 × resetTimeout with ±20% jitter: at least 1.6 × resetTimeout.
    const secondOpen = await waitForState(zoned, bad, 'half-open', RESET_MS * 6);
    assert.ok(
      secondOpen >= RESET_MS * 1.6 - 5,
      `the second open period (${secondOpen.toFixed(0)} ms) is longer than the first (${firstOpen.toFixed(0)} ms)`,
    );
  });
});

describe('a half-open probe whose client goes away', () => {
  it('proves nothing: the breaker opens again for the same open time, neither closed nor reset', async (t) => {
    const RESET_MS = 250;
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: { retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, resetTimeout: `${RESET_MS}ms`, maxEjectionPercent: 100 } },
    });
    const [only] = zoned.ids() as [string];
    const upstream = zoned.upstreams.get(only)!;
    await failWith(upstream, '503');
    await requestUntil(zoned, () => stateOf(zoned, only) === 'open');
    // A failed probe first, so the open time has grown to 2 × resetTimeout.
    await waitForState(zoned, only, 'half-open', RESET_MS * 4);
    await requestUntil(zoned, () => stateOf(zoned, only) !== 'half-open');
    await waitForState(zoned, only, 'half-open', RESET_MS * 6);

    await failWith(upstream, 'hang');
    const before = upstream.requests.length;
    const url = new URL(zoned.url);
    const client = request({ host: url.hostname, port: url.port, path: '/probe', agent: false });
    client.on('error', () => {});
    client.end();
    await pollUntil(() => (upstream.requests.length === before + 1 ? true : undefined), 3000, 'the probe to reach the instance');
    client.destroy();
    await zoned.log.waitFor((line) => line.msg === 'access' && line.path === '/probe');
    assert.equal(stateOf(zoned, only), 'open');
    assert.equal(zoned.gateway.registry.isEjected(only), true);
    assert.equal(
      zoned.log.lines.filter((line) => line.msg === 'breaker closed; instance readmitted').length,
      0,
      'the breaker never closed on the way',
    );

    // Still 2 × resetTimeout (±20%): a close would have reset it to resetTimeout.
    const openAgain = await waitForState(zoned, only, 'half-open', RESET_MS * 6);
    assert.ok(openAgain >= RESET_MS * 1.6 - 25, `open for ${openAgain.toFixed(0)} ms after the abandoned probe`);
  });
});

describe('a call sent before the breaker opened', () => {
  const RESET_MS = 250;

  for (const [outcome, status] of [['succeeds', 200], ['fails', 503]] as const) {
    it(`does not decide the half-open breaker when it ${outcome} late: the probe still does`, async (t) => {
      const zoned = await zonedGateway(t, {
        services: { app: { 'sh-a': 1 } },
        route: { timeout: '10s', retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, resetTimeout: `${RESET_MS}ms` } },
      });
      const [only] = zoned.ids() as [string];
      const upstream = zoned.upstreams.get(only)!;
      // The first request is held until the breaker is half-open; the others fail and trip it.
      const release = Promise.withResolvers<void>();
      let held = false;
      upstream.handle((req, res) => {
        if (held) return answer(503)(req, res);
        held = true;
        void release.promise.then(() => answer(status)(req, res));
      });
      const late = zoned.client.request({ path: '/late' });
      await pollUntil(() => (upstream.requests.length === 1 ? true : undefined), 3000, 'the slow request to reach the instance');
      await requestUntil(zoned, () => stateOf(zoned, only) === 'open');
      await waitForState(zoned, only, 'half-open', RESET_MS * 4);

      release.resolve();
      assert.equal((await late).status, status);
      assert.equal(stateOf(zoned, only), 'half-open', 'the late answer is not the probe');
      assert.equal(zoned.gateway.registry.isEjected(only), false, 'the instance still waits for its probe');

      recover(zoned, only);
      const probe = await zoned.client.request();
      assert.equal(`${probe.status} ${probe.upstream}`, `200 ${only}`);
      assert.equal(stateOf(zoned, only), 'closed');
    });
  }
});

describe('answers that do not trip a breaker', () => {
  it('never opens on 4xx or 429, however many', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: { retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, maxEjectionPercent: 100 } },
    });
    const [only] = zoned.ids() as [string];
    const statuses = [400, 404, 409, 429, 499];
    let next = 0;
    zoned.upstreams.get(only)!.handle((req, res) => answer(statuses[next++ % statuses.length]!)(req, res));

    const replies = await zoned.client.sequential(VOLUME * 6, () => ({}));
    assert.deepEqual(replies.map((r) => r.status), Array.from({ length: VOLUME * 6 }, (_, i) => statuses[i % statuses.length]));
    assert.equal(received(zoned, only), VOLUME * 6, 'every request reached the instance');
    assert.equal(stateOf(zoned, only), 'closed');
    assert.equal(zoned.gateway.registry.isEjected(only), false);
  });

  for (const failOn500 of [false, true]) {
    it(`${failOn500 ? 'counts' : 'does not count'} a 500 with failOn500: ${failOn500}, even one held back for a retry`, async (t) => {
      const zoned = await zonedGateway(t, {
        services: { app: { 'sh-a': 2 } },
        route: { retries: { maxRetries: 1, backoff: '1ms', on: [500] }, breaker: { volumeThreshold: VOLUME, failOn500, maxEjectionPercent: 100 } },
      });
      for (const upstream of zoned.upstreams.values()) upstream.handle(answer(500));
      const replies = await zoned.client.sequential(VOLUME * 2, () => ({}));
      assert.ok(replies.every((r) => r.status === 500 || r.status === 503), replies.map((r) => r.status).join());
      const states = zoned.ids().map((id) => stateOf(zoned, id));
      assert.deepEqual(states, failOn500 ? ['open', 'open'] : ['closed', 'closed']);
    });
  }

  it('does not count a client that goes away as a failure', async (t) => {
    const zoned = await zonedGateway(t, {
      services: { app: { 'sh-a': 1 } },
      route: { retries: { maxRetries: 0 }, breaker: { volumeThreshold: VOLUME, maxEjectionPercent: 100 } },
    });
    const [only] = zoned.ids() as [string];
    const upstream = zoned.upstreams.get(only)!;
    await failWith(upstream, 'hang');
    const url = new URL(zoned.url);
    for (let i = 0; i < VOLUME * 2; i++) {
      const client = request({ host: url.hostname, port: url.port, path: `/leave/${i}`, agent: false });
      client.on('error', () => {});
      client.end();
      await pollUntil(() => (upstream.requests.length === i + 1 ? true : undefined), 3000, `request ${i} to reach the upstream`);
      client.destroy();
      await zoned.log.waitFor((line) => line.msg === 'access' && line.path === `/leave/${i}`);
    }
    assert.equal(stateOf(zoned, only), 'closed', 'client aborts are not instance failures');

    recover(zoned, only);
    const reply = await zoned.client.request();
    assert.equal(reply.status, 200);
    assert.equal(reply.upstream, only);
  });
});
