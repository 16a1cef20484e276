// startChunkReclaim asks for a young-generation collection when off-heap memory has grown by a step,
// and not again until it grows by another step above the level the collection brought it down to.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startChunkReclaim } from '../src/memory.ts';
import { pollUntil } from './support/http.ts';

const MiB = 1024 * 1024;

describe('chunk reclaim', () => {
  it('collects after each step of growth, measured from the lowest level since the last collection', async () => {
    let external = 10 * MiB;
    const collectedAt: number[] = [];
    const reclaim = startChunkReclaim({
      stepBytes: 4 * MiB,
      intervalMs: 1,
      externalBytes: () => external,
      collect: () => {
        collectedAt.push(external);
        external = 11 * MiB; // what the collection freed
      },
    });
    try {
      external = 13 * MiB; // under one step: nothing
      await new Promise((resolve) => setTimeout(resolve, 20));
      assert.deepEqual(collectedAt, []);
      external = 14 * MiB;
      await pollUntil(() => (collectedAt.length === 1 ? true : undefined), 2_000, 'the first collection');
      assert.deepEqual(collectedAt, [14 * MiB]);
      // The collection brought it down to 11 MiB: the next step counts from there, not from 14.
      await pollUntil(() => (external === 11 * MiB ? true : undefined), 2_000, 'the drop to be seen');
      external = 15 * MiB;
      await pollUntil(() => (collectedAt.length === 2 ? true : undefined), 2_000, 'the second collection');
      assert.equal(reclaim.collections, 2);
    } finally {
      reclaim.stop();
    }
  });

});
