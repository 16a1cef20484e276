// One gateway's lease on one bucket, on a clock the test sets: lease size from demand, spending, giving back,
// the deny cache and the RateLimit estimate.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BucketLease } from '../../src/ratelimit/lease.ts';
import type { RateLimitPolicy } from '../../src/ratelimit/policy.ts';
import { bucketPolicy } from './support.ts';

const INTERVAL_MS = 100;

function policy(capacity: number, perSecond: number, cost = 1): RateLimitPolicy {
  return bucketPolicy('r', capacity, perSecond, cost);
}

/** `count` requests spread evenly over [from, from + span) */
function demand(lease: BucketLease, count: number, from: number, span = INTERVAL_MS): void {
  for (let i = 0; i < count; i++) lease.noteRequest(from + (i * span) / count, INTERVAL_MS);
}

describe('lease size', () => {
  it('is one request for a key quieter than one request per interval', () => {
    const lease = new BucketLease('k', policy(1000, 1), 0);
    for (let at = 0; at < 2000; at += 150) {
      lease.noteRequest(at, INTERVAL_MS);
      assert.equal(lease.leaseRequests(0.1), 1, `at ${at} ms`);
    }
  });

  it("grows toward the last interval's demand", () => {
    const lease = new BucketLease('k', policy(1000, 1), 0);
    demand(lease, 30, 0);
    lease.noteRequest(INTERVAL_MS, INTERVAL_MS);
    assert.equal(lease.leaseRequests(0.1), 30);
  });

  it('is capped at maxShare of the burst, in whole requests, and never below one request', () => {
    const lease = new BucketLease('k', policy(1000, 1, 4), 0);
    demand(lease, 500, 0);
    lease.noteRequest(INTERVAL_MS, INTERVAL_MS);
    assert.equal(lease.leaseRequests(0.1), 25, '100 tokens at 4 per request');
    assert.equal(lease.leaseRequests(0), 1, 'maxShare 0: no leases');
    assert.equal(new BucketLease('k', policy(3, 1), 0).leaseRequests(0.1), 1, 'a tenth of 3 tokens is no whole request');
  });

  it('forgets demand older than two intervals', () => {
    const lease = new BucketLease('k', policy(1000, 1), 0);
    demand(lease, 50, 0);
    lease.noteRequest(1000, INTERVAL_MS);
    assert.equal(lease.leaseRequests(0.1), 1);
  });
});

describe('spending a lease', () => {
  it('admits from the tokens a call granted beyond its requests, and estimates r= from the bucket and the lease', () => {
    const lease = new BucketLease('k', policy(100, 10), 0);
    // two requests asked, five granted: Redis has 60 left
    const decisions = lease.settle({ granted: 5, tokensLeft: 60, waitMs: 0 }, 2, 0, 1, INTERVAL_MS);
    assert.deepEqual(decisions.map((d) => [d.allowed, d.remaining]), [[true, 64], [true, 63]]);
    assert.equal(lease.tokens, 3);
    // 50 ms later: 60 + 0.5 refilled, 2 left in the lease
    const spent = lease.spend(50, true);
    assert.deepEqual(spent, { counted: true, allowed: true, remaining: 62.5, retryAfterMs: 0 });
  });

  it('sets an unspent lease aside to go back once its interval has passed, unless Redis cannot take it back', () => {
    const lease = new BucketLease('k', policy(100, 1), 0);
    lease.settle({ granted: 4, tokensLeft: 10, waitMs: 0 }, 1, 0, 0, INTERVAL_MS);
    assert.equal(lease.spend(INTERVAL_MS + 1, true), undefined);
    assert.equal(lease.givenBack, 3);
    assert.equal(lease.tokens, 0);

    const stranded = new BucketLease('k', policy(100, 1), 0);
    stranded.settle({ granted: 4, tokensLeft: 10, waitMs: 0 }, 1, 0, 0, INTERVAL_MS);
    assert.equal(stranded.spend(INTERVAL_MS * 50, false)?.allowed, true, 'Redis unavailable: leased tokens are spent first');
  });
});

describe('the deny cache', () => {
  it('refuses until the next token Redis announced, counted from when the call was sent', () => {
    const lease = new BucketLease('k', policy(5, 0.1), 0);
    // sent at 1000, answered at 1002: empty, a token in 10 s
    const [refused] = lease.settle({ granted: 0, tokensLeft: 0.2, waitMs: 8000 }, 1, 1000, 1002, INTERVAL_MS);
    assert.deepEqual(refused, { counted: true, allowed: false, remaining: 0.2, retryAfterMs: 8000 });
    const cached = lease.refusal(5000)!;
    assert.equal(cached.allowed, false);
    assert.equal(cached.retryAfterMs, 4000);
    assert.ok(Math.abs(cached.remaining - 0.6) < 1e-9, `0.2 + 4 s × 0.1/s, got ${cached.remaining}`);
    assert.equal(lease.refusal(9000), undefined, 'a token is due: Redis is asked again');
  });

  it('is cleared by an answer that leaves tokens, and set by a grant that empties the bucket', () => {
    const lease = new BucketLease('k', policy(5, 1), 0);
    lease.settle({ granted: 1, tokensLeft: 0, waitMs: 1000 }, 1, 0, 0, INTERVAL_MS);
    assert.equal(lease.refusal(10)?.retryAfterMs, 990);
    lease.settle({ granted: 1, tokensLeft: 2, waitMs: 0 }, 1, 1000, 1000, INTERVAL_MS);
    assert.equal(lease.refusal(1001), undefined);
  });

  it('answers the requests of a call beyond its grant with the refusal', () => {
    const lease = new BucketLease('k', policy(20, 1 / 60), 0);
    const decisions = lease.settle({ granted: 2, tokensLeft: 0, waitMs: 60_000 }, 4, 0, 0, INTERVAL_MS);
    assert.deepEqual(decisions.map((d) => [d.allowed, d.remaining, d.retryAfterMs]), [[true, 1, 0], [true, 0, 60_000], [false, 0, 60_000], [false, 0, 60_000]]);
  });
});
