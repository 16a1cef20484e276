// RetryState on its own, on a fake clock: what is retried, after how long, and what stops a retry.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configSchema, type RetryConfig } from '../../src/config/schema.ts';
import { UpstreamFailure } from '../../src/core/failure.ts';
import { RetryBudget } from '../../src/resilience/retry-budget.ts';
import { RetryState, type RetryRequest } from '../../src/resilience/retry-state.ts';

function policy(retries: Record<string, unknown> = {}): RetryConfig {
  const config = configSchema.parse({
    gateway: { zone: 'sh-a' },
    topology: { 'cn-east': { shanghai: ['sh-a'] } },
    routes: [{ name: 'r', match: { prefix: '/' }, service: 's', retries }],
  });
  return config.routes[0]!.retries;
}

const NOW = 1000;
const clock = (): number => NOW;
const GET: RetryRequest = { method: 'GET', replayable: true, deadline: NOW + 15_000 };
const POST: RetryRequest = { ...GET, method: 'POST' };

function state(request: RetryRequest = GET, retries?: Record<string, unknown>, budget = new RetryBudget(undefined, clock)): RetryState {
  return new RetryState(policy(retries), budget, request, clock);
}

const refused = new UpstreamFailure('connect-failure');
const reset = new UpstreamFailure('reset');
const timeout = new UpstreamFailure('timeout');
const unavailable = new UpstreamFailure('status', undefined, 503);

describe('RetryState', () => {
  it('retries a refused or reset connection at once, and a timeout or failure status after a backoff', () => {
    assert.equal(state().backoffAfter(refused, true), 0);
    assert.equal(state().backoffAfter(reset, true), 0);
    const afterTimeout = state().backoffAfter(timeout, true)!;
    assert.ok(afterTimeout >= 12.5 && afterTimeout <= 37.5, `${afterTimeout} ms: the 25 ms default backoff, jittered`);
    assert.ok(state().backoffAfter(unavailable, true)! > 0);
  });

  it('has timeout among the default conditions', () => {
    assert.deepEqual(policy().on, ['connect-failure', 'reset', 'timeout', 502, 503, 504]);
  });

  it('retries a POST only when nothing was sent: a refused connect, never a reset, timeout or status', () => {
    assert.equal(state(POST).backoffAfter(refused, true), 0);
    assert.equal(state(POST).backoffAfter(reset, true), undefined);
    assert.equal(state(POST).backoffAfter(timeout, true), undefined);
    assert.equal(state(POST).backoffAfter(unavailable, true), undefined);
    assert.equal(state(POST).retriesStatus(503), false);
  });

  it('grants at most maxRetries retries', () => {
    const retry = state(GET, { maxRetries: 2 });
    assert.equal(retry.backoffAfter(refused, true), 0);
    assert.equal(retry.backoffAfter(refused, true), 0);
    assert.equal(retry.backoffAfter(refused, true), undefined);
    assert.equal(retry.retries, 2);
  });

  it('does not retry without another instance, a body it can send again, or a condition of `on`', () => {
    assert.equal(state().backoffAfter(refused, false), undefined);
    assert.equal(state({ ...GET, replayable: false }).backoffAfter(refused, true), undefined);
    assert.equal(state(GET, { on: ['reset'] }).backoffAfter(timeout, true), undefined);
    assert.equal(state(GET, { on: [502] }).retriesStatus(503), false);
  });

  it('does not wait for a backoff that ends past the deadline', () => {
    const retry = state({ ...GET, deadline: NOW + 10 }, { backoff: '1s' });
    assert.equal(retry.backoffAfter(timeout, true), undefined);
    assert.equal(retry.backoffAfter(refused, true), 0, 'an immediate retry still fits');
  });

  it('asks the budget, and takes nothing from it when the retry is refused for another reason', () => {
    const budget = new RetryBudget({ share: 0.2, windowMs: 10_000, minPerSecond: 0.1 }, clock);
    assert.equal(budget.available, 1);
    assert.equal(state(POST, {}, budget).backoffAfter(reset, true), undefined);
    assert.equal(budget.available, 1);
    assert.equal(state(GET, {}, budget).backoffAfter(reset, true), 0);
    assert.equal(budget.available, 0);
    assert.equal(state(GET, {}, budget).backoffAfter(reset, true), undefined, 'the budget is spent');
  });
});
