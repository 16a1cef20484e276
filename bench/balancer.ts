// Cost of one instance choice at 100 instances (target: under 2 µs per pick).
// Run: node bench/balancer.ts
import { LeastRequestPicker, members, rendezvous } from '../src/routing/balancer.ts';
import { hashKey } from '../src/routing/hash.ts';

const INSTANCES = 100;
const KEYS = 4_096;
const PICKS = 2_000_000;
const WARMUP_PICKS = 200_000;

interface Upstream {
  readonly id: string;
  readonly weight: number;
  inFlight: number;
}

const upstreams: Upstream[] = Array.from({ length: INSTANCES }, (_, i) => ({
  id: `10.0.${i >> 8}.${i & 255}:8080`,
  weight: 1 + (i % 4),
  inFlight: i % 7,
}));
const list = members(upstreams, (u) => u.id, (u) => u.weight);
const picker = new LeastRequestPicker(list);
const inFlight = (u: Upstream): number => u.inFlight;
const keys = Array.from({ length: KEYS }, (_, i) => `session-${i.toString(36)}-${(i * 2654435761) >>> 0}`);
const keyHashes = Uint32Array.from(keys, hashKey);

/** Runs `pick` `count` times and returns ns per call; the checksum keeps the calls from being optimised away. */
function time(count: number, pick: (i: number) => number): { nsPerPick: number; checksum: number } {
  let checksum = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < count; i++) checksum += pick(i);
  const elapsed = Number(process.hrtime.bigint() - start);
  return { nsPerPick: elapsed / count, checksum };
}

const cases: Record<string, (i: number) => number> = {
  'rendezvous (key hash precomputed)': (i) => rendezvous(list, keyHashes[i & (KEYS - 1)]!)!.weight,
  'hashKey + rendezvous': (i) => rendezvous(list, hashKey(keys[i & (KEYS - 1)]!))!.weight,
  'LeastRequestPicker.pick': () => picker.pick(inFlight)!.weight,
};

console.log(`${INSTANCES} instances, ${PICKS.toLocaleString('en')} picks per case, node ${process.version}`);
for (const [name, pick] of Object.entries(cases)) {
  time(WARMUP_PICKS, pick);
  const { nsPerPick, checksum } = time(PICKS, pick);
  const verdict = nsPerPick < 2_000 ? 'ok' : 'OVER the 2 µs target';
  console.log(`${name.padEnd(36)} ${nsPerPick.toFixed(0).padStart(6)} ns/pick  ${verdict}  (checksum ${checksum})`);
}
