// The in-memory bucket and the header formatter, with an injected clock: exact numbers, no waiting.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatPolicyHeader, formatRateLimitHeader, retryAfterSeconds, type BucketDecision } from '../../src/ratelimit/decision.ts';
import { LocalBuckets } from '../../src/ratelimit/local-buckets.ts';

describe('in-memory token bucket', () => {
  it('admits the burst, then refuses with the time until the next token', () => {
    const buckets = new LocalBuckets(3, 10);
    const decisions = [0, 0, 0, 0].map(() => buckets.take('k', 1, 1000));
    assert.deepEqual(decisions.map((d) => d.allowed), [true, true, true, false]);
    assert.deepEqual(decisions.map((d) => d.remaining), [2, 1, 0, 0]);
    assert.deepEqual(decisions.map((d) => d.retryAfterMs), [0, 0, 100, 100]);
  });

  it('refills at the rate as time passes, never beyond the capacity', () => {
    const buckets = new LocalBuckets(3, 10);
    for (let i = 0; i < 3; i++) buckets.take('k', 1, 1000);
    const afterQuarterSecond = buckets.take('k', 1, 1250);
    assert.equal(afterQuarterSecond.allowed, true);
    assert.ok(Math.abs(afterQuarterSecond.remaining - 1.5) < 1e-9, `remaining ${afterQuarterSecond.remaining}`);
    const afterAMinute = buckets.take('k', 1, 61_250);
    assert.equal(afterAMinute.remaining, 2, 'a full bucket holds capacity tokens, minus this request');
  });

  it('takes `cost` tokens per request and waits for `cost` tokens', () => {
    const buckets = new LocalBuckets(5, 2);
    assert.equal(buckets.take('k', 3, 0).remaining, 2);
    const refused = buckets.take('k', 3, 0);
    assert.equal(refused.allowed, false);
    assert.equal(refused.retryAfterMs, 500, 'one more token at 2/s');
  });

  it('keeps separate buckets per key', () => {
    const buckets = new LocalBuckets(1, 1);
    assert.equal(buckets.take('alice', 1, 0).allowed, true);
    assert.equal(buckets.take('alice', 1, 0).allowed, false);
    assert.equal(buckets.take('bob', 1, 0).allowed, true);
  });

  it('refills nothing when the clock reads earlier than the last refill', () => {
    const buckets = new LocalBuckets(2, 1000);
    buckets.take('k', 1, 5000);
    buckets.take('k', 1, 5000);
    assert.equal(buckets.take('k', 1, 4000).allowed, false);
  });

  it('drops buckets that have refilled, and caps the number of keys', () => {
    const buckets = new LocalBuckets(2, 10, 50);
    for (let i = 0; i < 40; i++) buckets.take(`idle-${i}`, 1, 0);
    assert.equal(buckets.size, 40);
    // 100 ms later every idle bucket is full again, so each new take clears idle ones in passing
    for (let i = 0; i < 20; i++) buckets.take(`new-${i}`, 1, 1000);
    assert.equal(buckets.size, 20, 'only the buckets still refilling are kept');
    for (let i = 0; i < 200; i++) buckets.take(`flood-${i}`, 1, 1000);
    assert.ok(buckets.size <= 50, `size ${buckets.size} stays within maxKeys`);
  });
});

describe('RateLimit headers (draft-ietf-httpapi-ratelimit-headers-11)', () => {
  const decision = (remaining: number, retryAfterMs: number): BucketDecision => ({ counted: true, allowed: true, remaining, retryAfterMs });

  it('formats the policy with an integer quota and the window of the configured rate', () => {
    assert.equal(formatPolicyHeader('orders', 200, 1), '"orders";q=200;w=1');
    assert.equal(formatPolicyHeader('orders', 1.67, 60), '"orders";q=1;w=60');
  });

  it('rounds remaining down and the wait up, to whole tokens and seconds', () => {
    assert.equal(formatRateLimitHeader('orders', decision(41.9, 0)), '"orders";r=41;t=0');
    assert.equal(formatRateLimitHeader('orders', decision(0.4, 1200)), '"orders";r=0;t=2');
  });

  it('never tells a refused client to retry after 0 seconds', () => {
    assert.equal(retryAfterSeconds(decision(0, 10)), 1);
    assert.equal(retryAfterSeconds(decision(0, 2500)), 3);
  });
});
