// Keeps streamed bodies from piling up in memory after they are sent.
//
// Every body chunk read from a socket lives off the V8 heap, and V8 frees it only when the chunk's small
// JS wrapper is collected. Streaming allocates little else on the heap, so V8 waits until ~64 MiB of
// finished chunks have gathered (its external-memory limit) before it collects: a 200 MB transfer then
// holds 70+ MiB of dead chunks, and the process keeps that peak. A young-generation collection, cheap when
// nearly everything young is dead, frees them; one is requested whenever off-heap memory has grown by
// `stepBytes` since the last look. Busy small-request traffic fills the young generation on its own, so
// this rarely fires outside large transfers.
import { getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface ReclaimOptions {
  /** growth of off-heap memory that triggers a collection; default 4 MiB */
  readonly stepBytes?: number;
  /** how often off-heap memory is looked at; default 10 ms (at loopback speed, well under a step) */
  readonly intervalMs?: number;
  /** seams for tests */
  readonly externalBytes?: () => number;
  readonly collect?: () => void;
  /** told when the collector cannot be had or fails; reclaiming then stops, the gateway runs on */
  readonly onError?: (err: unknown) => void;
}

export interface ChunkReclaim {
  /** collections requested so far */
  readonly collections: number;
  stop(): void;
}

const DEFAULT_STEP_BYTES = 4 * 1024 * 1024;
const DEFAULT_INTERVAL_MS = 10;

type GcFunction = (options: { type: 'minor'; execution: 'async' }) => void;

/**
 * V8's own collector entry point. Without `--expose-gc` on the command line, the flag is switched on at
 * run time and `gc` taken from a fresh context (the global of the main context was built without it).
 */
function youngGenerationCollector(): () => void {
  let gc = (globalThis as { gc?: GcFunction }).gc;
  if (gc === undefined) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as GcFunction;
  }
  return () => gc({ type: 'minor', execution: 'async' });
}

export function startChunkReclaim(options: ReclaimOptions = {}): ChunkReclaim {
  const stepBytes = options.stepBytes ?? DEFAULT_STEP_BYTES;
  const externalBytes = options.externalBytes ?? (() => getHeapStatistics().external_memory);
  let collections = 0;
  let collect: () => void;
  try {
    collect = options.collect ?? youngGenerationCollector();
  } catch (err) {
    options.onError?.(err);
    return { collections, stop: () => {} };
  }
  // The lowest level seen since the last request: a collection shows up as a drop, growth above it as new chunks.
  let floor = externalBytes();
  const timer = setInterval(() => {
    const current = externalBytes();
    if (current < floor) floor = current;
    else if (current - floor >= stepBytes) {
      try {
        collect();
      } catch (err) {
        clearInterval(timer);
        options.onError?.(err);
        return;
      }
      collections += 1;
      floor = current;
    }
  }, options.intervalMs ?? DEFAULT_INTERVAL_MS).unref();
  return {
    get collections() {
      return collections;
    },
    stop: () => clearInterval(timer),
  };
}
