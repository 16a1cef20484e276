import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  LeastRequestPicker,
  WeightedMembers,
  members,
  rendezvous,
  weightedRandom,
  type Member,
} from '../../src/routing/balancer.ts';
import { hashKey, mix } from '../../src/routing/hash.ts';

const KEY_COUNT = 100_000;
const keyHashes = Uint32Array.from({ length: KEY_COUNT }, (_, i) => hashKey(`user-${i}`));

interface Host {
  readonly id: string;
  readonly weight: number;
}

function hosts(weights: readonly number[]): Member<Host>[] {
  const list = weights.map((weight, i) => ({ id: `10.0.0.${i}:8080`, weight }));
  return members(list, (host) => host.id, (host) => host.weight);
}

/** The member each key lands on, as an index into `all` (-1 for none). */
function assignments(all: readonly Member<Host>[], subset: readonly Member<Host>[]): Int32Array {
  const result = new Int32Array(KEY_COUNT);
  for (let k = 0; k < KEY_COUNT; k++) {
    const chosen = rendezvous(subset, keyHashes[k]!);
    result[k] = chosen === undefined ? -1 : all.indexOf(chosen);
  }
  return result;
}

function countsOf(chosen: Int32Array, size: number): number[] {
  const counts = new Array<number>(size).fill(0);
  for (const index of chosen) counts[index]!++;
  return counts;
}

function assertShares(counts: readonly number[], weights: readonly number[], tolerance: number): void {
  const total = counts.reduce((a, b) => a + b, 0);
  const weightSum = weights.reduce((a, b) => a + b, 0);
  counts.forEach((count, i) => {
    const expected = (total * weights[i]!) / weightSum;
    const deviation = Math.abs(count / expected - 1);
    const expectation = `expected ${expected.toFixed(0)} ±${tolerance * 100}%`;
    assert.ok(deviation <= tolerance, `member ${i} (weight ${weights[i]}): ${count} picks, ${expectation}`);
  });
}

/** mulberry32: a seeded generator so random-split tests give the same numbers on every run. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = Math.imul(state ^ (state >>> 15), state | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

describe('members', () => {
  it('rejects weights that cannot take part in a weighted choice', () => {
    for (const weight of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => hosts([1, weight]), RangeError);
    }
  });
});

describe('rendezvous', () => {
  it('returns undefined for an empty list', () => {
    assert.equal(rendezvous([], hashKey('anyone')), undefined);
  });

  it('sends the same key to the same member while the set is unchanged, even rebuilt in another order', () => {
    const list = hosts([1, 1, 2, 1, 3, 1, 1, 2]);
    const reordered = members(
      [...list].reverse().map((m) => m.item),
      (host) => host.id,
      (host) => host.weight,
    );
    for (let k = 0; k < 2_000; k++) {
      const first = rendezvous(list, keyHashes[k]!);
      assert.equal(rendezvous(list, keyHashes[k]!), first);
      assert.equal(rendezvous(reordered, keyHashes[k]!)?.item, first?.item);
    }
  });

  it('picks the member with the highest -weight/ln(u) score for every key, despite skipping logarithms', () => {
    const list = hosts(Array.from({ length: 40 }, (_, i) => [1, 2, 0.5, 7][i % 4]!));
    const unitInterval = (hash: number): number => (hash + 0.5) / 2 ** 32;
    for (let k = 0; k < 20_000; k++) {
      const scores = list.map((m) => -m.weight / Math.log(unitInterval(mix(keyHashes[k]!, m.seed))));
      const highest = scores.indexOf(Math.max(...scores));
      assert.equal(rendezvous(list, keyHashes[k]!), list[highest]);
    }
  });

  for (const size of [10, 50]) {
    it(`moves only the removed member's keys when 1 of ${size} leaves, and moves them back when it returns`, () => {
      const all = hosts(Array.from({ length: size }, (_, i) => 1 + (i % 3)));
      const removed = size >> 1;
      const before = assignments(all, all);
      const during = assignments(all, all.filter((_, i) => i !== removed));
      const after = assignments(all, all);

      let collateral = 0;
      let moved = 0;
      for (let k = 0; k < KEY_COUNT; k++) {
        if (before[k] === removed) moved++;
        else if (during[k] !== before[k]) collateral++;
        assert.notEqual(during[k], removed);
      }
      assert.equal(collateral, 0);
      assert.ok(moved > 0, 'the removed member held no keys, so the test proved nothing');
      assert.deepEqual(after, before);
    });
  }

  for (const weights of [[1, 2, 3, 4], [0.5, 1.5]]) {
    it(`gives members of weights ${weights.join(', ')} shares of keys proportional to weight (±3%)`, () => {
      const list = hosts(weights);
      assertShares(countsOf(assignments(list, list), list.length), weights, 0.03);
    });
  }

  it('splits keys 80/20 between two services by weight (±3%)', () => {
    const services = members(
      [{ id: 'order-v1', weight: 80 }, { id: 'order-v2', weight: 20 }],
      (service) => service.id,
      (service) => service.weight,
    );
    assertShares(countsOf(assignments(services, services), 2), [80, 20], 0.03);
  });
});

describe('weightedRandom', () => {
  it('returns undefined for an empty list', () => {
    assert.equal(weightedRandom(new WeightedMembers([])), undefined);
  });

  it('splits by weight (±3%)', () => {
    const weights = [1, 2, 3, 4];
    const weighted = new WeightedMembers(hosts(weights));
    const random = seededRandom(7);
    const counts = new Array<number>(weights.length).fill(0);
    for (let i = 0; i < KEY_COUNT; i++) counts[weighted.list.indexOf(weightedRandom(weighted, random)!)]!++;
    assertShares(counts, weights, 0.03);
  });
});

describe('WeightedMembers.drawIndex', () => {
  it('never returns the excluded member, even when fractional weights round a draw onto the end of the range', () => {
    const largestBelowOne = 1 - 2 ** -53;
    for (const weights of [[0.1, 0.1, 2.3], [0.3, 0.3, 1.1], [1, 2, 3]]) {
      const weighted = new WeightedMembers(hosts(weights));
      for (let excluded = 0; excluded < weights.length; excluded++) {
        for (const value of [0, 0.5, largestBelowOne]) {
          const index = weighted.drawIndex(() => value, excluded);
          assert.notEqual(index, excluded, `weights ${weights}, excluded ${excluded}, random ${value}`);
          assert.ok(index >= 0 && index < weights.length);
        }
      }
    }
  });
});

describe('LeastRequestPicker', () => {
  const idle = (): number => 0;

  it('returns undefined for an empty list and the only member of a list of one', () => {
    assert.equal(new LeastRequestPicker<Host>([]).pick(idle), undefined);
    const [only] = hosts([5]);
    assert.equal(new LeastRequestPicker([only!]).pick(idle), only);
  });

  const twoMemberCases = [
    { name: 'always prefers the less-loaded of two members', weights: [1, 1], loads: [5, 2], winner: 1 },
    // 2 in flight on weight 3 is lighter than 1 in flight on weight 1.
    { name: 'compares load per unit of weight', weights: [3, 1], loads: [2, 1], winner: 0 },
  ];
  for (const { name, weights, loads, winner } of twoMemberCases) {
    it(name, () => {
      const list = hosts(weights);
      const picker = new LeastRequestPicker(list);
      const random = seededRandom(1);
      const load = (host: Host): number => loads[list.findIndex((m) => m.item === host)]!;
      for (let i = 0; i < 1_000; i++) assert.equal(picker.pick(load, random), list[winner]);
    });
  }

  it('draws two distinct members: the least-loaded of 10 wins exactly when drawn, 2 picks in 10', () => {
    const list = hosts(new Array<number>(10).fill(1));
    const lightest = list[3]!.item;
    const picker = new LeastRequestPicker(list);
    const random = seededRandom(3);
    let wins = 0;
    const load = (host: Host): number => (host === lightest ? 0 : 1);
    for (let i = 0; i < KEY_COUNT; i++) if (picker.pick(load, random)?.item === lightest) wins++;
    // With replacement the share would be 1 - 0.9² = 0.19.
    assert.ok(Math.abs(wins / KEY_COUNT - 0.2) <= 0.2 * 0.03, `lightest won ${wins / KEY_COUNT}`);
  });

  it('never picks the most loaded member when there is a choice', () => {
    const list = hosts([1, 1, 1, 1, 1]);
    const heaviest = list[2]!.item;
    const picker = new LeastRequestPicker(list);
    const random = seededRandom(4);
    const load = (host: Host): number => (host === heaviest ? 9 : 0);
    for (let i = 0; i < 10_000; i++) assert.notEqual(picker.pick(load, random)?.item, heaviest);
  });

  it('gives a weight-3 member 3× the picks of a weight-1 member under equal load (±3%)', () => {
    const weights = [1, 3, 1, 3];
    const list = hosts(weights);
    const picker = new LeastRequestPicker(list);
    const random = seededRandom(5);
    const counts = new Array<number>(list.length).fill(0);
    for (let i = 0; i < KEY_COUNT; i++) counts[list.indexOf(picker.pick(idle, random)!)]!++;
    assertShares(counts, weights, 0.03);
    const ratio = (counts[1]! + counts[3]!) / (counts[0]! + counts[2]!);
    assert.ok(Math.abs(ratio / 3 - 1) <= 0.03, `weight-3 members got ${ratio.toFixed(3)}× the picks`);
  });
});
