// Fixed-size rolling windows of one-second slots for the live stats: a ring of slots the request path adds to and a
// tick moves on, a latency histogram per slot (log-spaced buckets, so p99 needs no samples kept), and the sum of a
// window's slots as rates.

/** Latency histogram: 4 buckets per doubling from 0.1 ms (each bound 19% above the last), the last open-ended (≥ ~100 s). */
const LATENCY_MIN_MS = 0.1;
const BUCKETS_PER_OCTAVE = 4;
const LATENCY_BUCKETS = 80;

export function latencyBucket(ms: number): number {
  if (!(ms > LATENCY_MIN_MS)) return 0;
  return Math.min(LATENCY_BUCKETS - 1, Math.ceil(Math.log2(ms / LATENCY_MIN_MS) * BUCKETS_PER_OCTAVE));
}

/** The upper bound of a latency bucket, in ms. */
function bucketBound(index: number): number {
  return LATENCY_MIN_MS * 2 ** (index / BUCKETS_PER_OCTAVE);
}

/** The p99 of a histogram: the upper bound of the bucket the 99th percentile falls in (null: no sample). */
export function p99(histogram: Uint32Array): number | null {
  let total = 0;
  for (const count of histogram) total += count;
  if (total === 0) return null;
  const rank = Math.ceil(total * 0.99);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i]!;
    if (seen >= rank) return bucketBound(i);
  }
  return bucketBound(histogram.length - 1);
}

export class TrafficSlot {
  start = 0;
  requests = 0;
  /** answers with a 5xx status */
  errors = 0;
  /** tries that failed and were retried elsewhere (an instance's), or 429s (a route's) */
  refused = 0;
  readonly latency = new Uint32Array(LATENCY_BUCKETS);

  reset(start: number): void {
    this.start = start;
    this.requests = this.errors = this.refused = 0;
    this.latency.fill(0);
  }
}

export class TierSlot {
  start = 0;
  readonly counts: Uint32Array;

  constructor(tiers: number) {
    this.counts = new Uint32Array(tiers);
  }

  reset(start: number): void {
    this.start = start;
    this.counts.fill(0);
  }
}

/** A ring of slots; `current` is the one the request path adds to. */
export class Ring<Slot extends { start: number; reset(start: number): void }> {
  readonly slots: readonly Slot[];
  current: Slot;
  #index = 0;

  constructor(length: number, make: () => Slot, now: number) {
    this.slots = Array.from({ length }, make);
    for (const slot of this.slots) slot.reset(-Infinity);
    this.current = this.slots[0]!;
    this.current.reset(now);
  }

  advance(now: number): void {
    this.#index = (this.#index + 1) % this.slots.length;
    this.current = this.slots[this.#index]!;
    this.current.reset(now);
  }

  /** The slot `age` ticks back (0: the current one). */
  back(age: number): Slot {
    return this.slots[(this.#index - age + this.slots.length) % this.slots.length]!;
  }

  /** The slots newer than `since`. */
  *since(since: number): Iterable<Slot> {
    for (const slot of this.slots) if (slot.start >= since) yield slot;
  }
}

/** Figures over a window: rates per second; `p99Ms` null without a sample. */
export interface TrafficFigures {
  readonly requests: number;
  readonly perSecond: number;
  readonly errorRate: number;
  readonly p99Ms: number | null;
  /** per second: failed tries retried elsewhere (instances), or 429s (routes) */
  readonly refusedPerSecond: number;
}

/** The sum of a window's slots. */
export class Window {
  requests = 0;
  errors = 0;
  refused = 0;
  readonly latency = new Uint32Array(LATENCY_BUCKETS);
  oldest = Infinity;

  add(slot: TrafficSlot): void {
    this.requests += slot.requests;
    this.errors += slot.errors;
    this.refused += slot.refused;
    for (let i = 0; i < LATENCY_BUCKETS; i++) this.latency[i]! += slot.latency[i]!;
    this.oldest = Math.min(this.oldest, slot.start);
  }

  figures(now: number): TrafficFigures {
    // the time the slots cover, current one included; at least a second, so a fresh window does not overstate rates
    const seconds = Math.max(1, (now - this.oldest) / 1000);
    return {
      requests: this.requests,
      perSecond: this.requests / seconds,
      errorRate: this.requests === 0 ? 0 : this.errors / this.requests,
      p99Ms: p99(this.latency),
      refusedPerSecond: this.refused / seconds,
    };
  }
}

/** No request and no failed try in any slot of the ring. */
export function idle(ring: Ring<TrafficSlot>): boolean {
  return ring.slots.every((slot) => slot.requests === 0 && slot.refused === 0);
}
