// Instance (and service) choice. Everything here is built once per member list, when a snapshot or a
// config changes; the per-request calls only read precomputed arrays and allocate nothing.
import { mix, seedOf } from './hash.ts';

export interface Member<T> {
  readonly item: T;
  readonly weight: number;
  /** `seedOf(id)`, kept so a pick never hashes an id */
  readonly seed: number;
}

export function members<T>(
  items: readonly T[],
  idOf: (item: T) => string,
  weightOf: (item: T) => number,
): Member<T>[] {
  return items.map((item) => {
    const id = idOf(item);
    const weight = weightOf(item);
    // A zero or infinite weight would make rendezvous scores and cumulative draws meaningless.
    if (!(weight > 0 && Number.isFinite(weight))) {
      throw new RangeError(`weight of ${id} must be a positive number, got ${weight}`);
    }
    return Object.freeze({ item, weight, seed: seedOf(id) });
  });
}

const TWO_TO_MINUS_32 = 2 ** -32;

/** Maps a 32-bit hash into the open interval (0, 1): never 0, whose logarithm would be -Infinity. */
function openUnitInterval(hash: number): number {
  return (hash + 0.5) * TWO_TO_MINUS_32;
}

/**
 * Weighted rendezvous (highest random weight): each member scores -weight / ln(u) with u drawn from
 * (key, member), and the highest score wins. A member wins a share of keys proportional to its weight,
 * and since a member's score does not depend on the others, removing one moves only the keys it held;
 * they return when it does.
 */
export function rendezvous<T>(list: readonly Member<T>[], keyHash: number): Member<T> | undefined {
  let best: Member<T> | undefined;
  let bestScore = 0;
  for (let i = 0; i < list.length; i++) {
    const member = list[i]!;
    const u = openUnitInterval(mix(keyHash, member.seed));
    // The logarithm dominates the cost. Since -ln(u) >= 1 - u, a member with u <= 1 - weight/bestScore
    // cannot beat the best, so it is skipped without one; only about ln(n) members of n need it.
    if (u * bestScore <= bestScore - member.weight) continue;
    const score = -member.weight / Math.log(u);
    if (score > bestScore) {
      bestScore = score;
      best = member;
    }
  }
  return best;
}

/** A member list with its cumulative weights, for draws proportional to weight in O(log n). */
export class WeightedMembers<T> {
  readonly list: readonly Member<T>[];
  /** cumulative[i] = sum of the weights of list[0..i] */
  readonly #cumulative: Float64Array;

  constructor(list: readonly Member<T>[]) {
    this.list = list;
    this.#cumulative = new Float64Array(list.length);
    let sum = 0;
    for (let i = 0; i < list.length; i++) this.#cumulative[i] = sum += list[i]!.weight;
  }

  /**
   * Index of a member drawn by weight, or -1 when the list is empty. With `excluded`, draws among the
   * other members only (still by weight) by cutting that member's slice out of the range, so a second
   * distinct draw costs one random number rather than a retry loop.
   */
  drawIndex(random: () => number, excluded = -1): number {
    const count = this.list.length;
    if (count === 0) return -1;
    const cumulative = this.#cumulative;
    const total = cumulative[count - 1]!;
    let target: number;
    if (excluded < 0) {
      target = random() * total;
    } else {
      const sliceStart = excluded === 0 ? 0 : cumulative[excluded - 1]!;
      const sliceWeight = cumulative[excluded]! - sliceStart;
      target = random() * (total - sliceWeight);
      if (target >= sliceStart) target += sliceWeight;
    }
    let low = 0;
    let high = count - 1;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (cumulative[middle]! > target) high = middle;
      else low = middle + 1;
    }
    // Rounding can push a target onto the end of the range, which belongs to the last member.
    if (low === excluded) return low === 0 ? 1 : low - 1;
    return low;
  }
}

/** A random split by weight, e.g. between the services of a weighted route when there is no sticky key. */
export function weightedRandom<T>(
  weighted: WeightedMembers<T>,
  random: () => number = Math.random,
): Member<T> | undefined {
  const index = weighted.drawIndex(random);
  return index < 0 ? undefined : weighted.list[index];
}

/**
 * Power of two choices on load: draw two distinct members by weight and keep the one with the lower
 * load per unit of weight. A tie keeps the first draw, which is itself weighted-random, so an idle
 * member list is split exactly by weight.
 */
export class LeastRequestPicker<T> {
  readonly members: WeightedMembers<T>;

  constructor(list: readonly Member<T>[]) {
    this.members = new WeightedMembers(list);
  }

  pick(load: (item: T) => number, random: () => number = Math.random): Member<T> | undefined {
    const list = this.members.list;
    if (list.length <= 1) return list[0];
    const firstIndex = this.members.drawIndex(random);
    const first = list[firstIndex]!;
    const second = list[this.members.drawIndex(random, firstIndex)]!;
    // load/weight compared by cross-multiplying: no division, and weights are positive.
    return load(second.item) * first.weight < load(first.item) * second.weight ? second : first;
  }
}
