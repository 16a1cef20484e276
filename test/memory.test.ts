// startChunkReclaim asks for a young-generation collection when off-heap memory has grown by a step,
// and not again until it grows by another step above the level the collection brought it down to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startChunkReclaim } from '../src/memory.ts';
import { pollUntil } from './support/http.ts';

const MiB = 1024 * 1024;

/** An off-heap level the test sets, and how often the reclaim has looked at it. */
function fakeExternal(start: number): { level: number; looks: number; read: () => number } {
  const state = {
    level: start,
    looks: 0,
    read: () => {
      state.looks += 1;
      return state.level;
    },
  };
  return state;
}

/** Resolves after the reclaim has looked at the level `count` more times. */
function looksLater(external: { looks: number }, count: number): Promise<true> {
  const target = external.looks + count;
  return pollUntil(() => (external.looks >= target ? true : undefined), 2_000, `${count} more looks`);
}

describe('chunk reclaim', () => {
  it('collects after each step of growth, measured from the lowest level since the last collection', async () => {
    const external = fakeExternal(10 * MiB);
    const collectedAt: number[] = [];
    const reclaim = startChunkReclaim({
      stepBytes: 4 * MiB,
      intervalMs: 1,
      externalBytes: external.read,
      collect: () => {
        collectedAt.push(external.level);
        external.level = 11 * MiB; // what the collection freed
      },
    });
    try {
      external.level = 13 * MiB; // under one step: nothing
      await looksLater(external, 3);
      assert.deepEqual(collectedAt, []);
      external.level = 14 * MiB;
      await pollUntil(() => (collectedAt.length === 1 ? true : undefined), 2_000, 'the first collection');
      assert.deepEqual(collectedAt, [14 * MiB]);
      // The collection brought it down to 11 MiB: once that drop has been seen, the next step counts from there.
      await looksLater(external, 2);
      external.level = 15 * MiB;
      await pollUntil(() => (collectedAt.length === 2 ? true : undefined), 2_000, 'the second collection');
      assert.equal(reclaim.collections, 2);
    } finally {
      reclaim.stop();
    }
  });

  it('stops, and says why, when the collector fails', async () => {
    const external = fakeExternal(0);
    const errors: unknown[] = [];
    let calls = 0;
    const reclaim = startChunkReclaim({
      stepBytes: 1,
      intervalMs: 1,
      externalBytes: external.read,
      collect: () => {
        calls += 1;
        throw new Error('no collector here');
      },
      onError: (err) => errors.push(err),
    });
    try {
      external.level = 10 * MiB;
      await pollUntil(() => (errors.length > 0 ? true : undefined), 2_000, 'the error to be reported');
      const looksAtError = external.looks;
      external.level = 20 * MiB;
      // An absence can only be watched for: a timer still running every 1 ms would look ~20 times here.
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(external.looks, looksAtError, 'the reclaim stopped looking');
      assert.equal(calls, 1);
      assert.equal(errors.length, 1);
      assert.equal(reclaim.collections, 0);
    } finally {
      reclaim.stop();
    }
  });
});
