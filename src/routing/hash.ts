// Non-cryptographic 32-bit hashing for sticky keys and instance seeds. Stickiness across restarts
// and across gateway replicas depends on these exact values, so changing them remaps every session.
//
// Strings are hashed over their UTF-16 code units, one unit per FNV step: no encoding pass and no
// allocation on the request path. The result therefore differs from FNV-1a over UTF-8 bytes for
// non-ASCII text (and equals it for ASCII); only this gateway needs to reproduce it.

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a 32 over UTF-16 code units, unsigned. Weak avalanche on its own: use `hashKey`. */
export function fnv1a32(text: string): number {
  let hash = FNV_OFFSET_BASIS;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, FNV_PRIME);
  }
  return hash >>> 0;
}

/** MurmurHash3's 32-bit finaliser: a bijection in which every input bit flips about half the output bits. */
export function fmix32(value: number): number {
  let hash = value | 0;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/** Hash of a sticky key (header, cookie or query value), computed once per request. */
export function hashKey(key: string): number {
  return fmix32(fnv1a32(key));
}

/** Per-member seed, computed once when a member list is built. */
export function seedOf(id: string): number {
  return hashKey(id);
}

/**
 * Combines a key hash with a member seed into an unsigned 32-bit value. Because fmix32 is a
 * bijection, one key never gives two distinct seeds the same value, and its avalanche keeps the
 * values of different members uncorrelated across keys, which rendezvous hashing relies on.
 */
export function mix(keyHash: number, seed: number): number {
  return fmix32(keyHash ^ seed);
}
