import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { fmix32, fnv1a32, hashKey, mix, seedOf } from '../../src/routing/hash.ts';

const isUint32 = (value: number): boolean => Number.isInteger(value) && value >= 0 && value < 2 ** 32;

describe('fnv1a32', () => {
  it('matches the published FNV-1a 32 vectors for ASCII', () => {
    assert.equal(fnv1a32(''), 0x811c9dc5);
    assert.equal(fnv1a32('a'), 0xe40c292c);
    assert.equal(fnv1a32('foobar'), 0xbf9cf968);
  });

  it('hashes whole UTF-16 code units, so strings that differ only in a high byte differ', () => {
    assert.notEqual(fnv1a32('\u0161'), fnv1a32('\u0061'));
    assert.notEqual(fnv1a32('\u{1F600}'), fnv1a32('\u{1F601}'));
  });
});

describe('fmix32', () => {
  // MurmurHash3_x86_32 of the empty input is fmix32(seed), so its published vectors pin the finaliser.
  it('matches MurmurHash3 x86_32 empty-input vectors', () => {
    assert.equal(fmix32(0), 0);
    assert.equal(fmix32(1), 0x514e28b7);
    assert.equal(fmix32(0xffffffff), 0x81f16f39);
  });
});

describe('hashKey', () => {
  it('is FNV-1a followed by the murmur finaliser, as an unsigned 32-bit integer', () => {
    for (const key of ['', 'a', 'user-42', 'café', '\u{1F600}session']) {
      const hash = hashKey(key);
      assert.ok(isUint32(hash), `${key} → ${hash}`);
      assert.equal(hash, fmix32(fnv1a32(key)));
    }
  });

  it('spreads sequential keys evenly over 64 buckets of the top bits (±15%)', () => {
    const buckets = new Array<number>(64).fill(0);
    const keys = 64_000;
    for (let i = 0; i < keys; i++) buckets[hashKey(`user-${i}`) >>> 26]!++;
    for (const count of buckets) assert.ok(Math.abs(count / 1000 - 1) <= 0.15, `bucket holds ${count}, expected 1000`);
  });
});

describe('seedOf', () => {
  it('is stable per id and distinct across ids', () => {
    assert.equal(seedOf('10.0.0.1:8080'), seedOf('10.0.0.1:8080'));
    const seeds = new Set(Array.from({ length: 1_000 }, (_, i) => seedOf(`10.0.${i >> 8}.${i & 255}:8080`)));
    assert.equal(seeds.size, 1_000);
  });
});

describe('mix', () => {
  const keyHashes = Array.from({ length: 50_000 }, (_, i) => hashKey(`user-${i}`));

  it('returns unsigned 32-bit values, distinct per seed for one key', () => {
    const values = new Set<number>();
    for (let i = 0; i < 1_000; i++) {
      const value = mix(keyHashes[0]!, seedOf(`member-${i}`));
      assert.ok(isUint32(value));
      values.add(value);
    }
    assert.equal(values.size, 1_000);
  });

  it('gives two members uncorrelated values across keys: each is higher for half the keys', () => {
    // Rendezvous hashing is only fair if no member's value systematically beats another's.
    const seedPairs = [
      [seedOf('a'), seedOf('b')],
      [seedOf('10.0.0.1:8080'), seedOf('10.0.0.2:8080')],
      [1, 2],
      [0, 0x80000000],
    ] as const;
    for (const [left, right] of seedPairs) {
      let leftHigher = 0;
      for (const keyHash of keyHashes) if (mix(keyHash, left) > mix(keyHash, right)) leftHigher++;
      const share = leftHigher / keyHashes.length;
      assert.ok(Math.abs(share - 0.5) <= 0.01, `seeds ${left}/${right}: left higher for ${share}`);
    }
  });
});
