// The snapshot file: one schema to write and read, bad files reported and ignored, writes atomic and throttled
// (leading and trailing: at most and at least once a second while changes keep coming).
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, mock, test } from 'node:test';
import type { InstanceSpec } from '../../src/discovery/instance.ts';
import { loadSnapshotFile, parseSnapshotFile, serializeSnapshot, SnapshotWriter, writeAtomically } from '../../src/discovery/snapshot-file.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { badSnapshotFiles, snapshotScratch } from '../support/consul-fixture-gateway.ts';
import { captureLog } from '../support/gateway.ts';

const instance: InstanceSpec = {
  id: 'n/a1@dc1',
  service: 'orders',
  host: '127.0.0.1',
  port: 8080,
  zone: 'sh-a',
  weight: 1,
  tags: ['v1'],
  meta: { zone: 'sh-a' },
  healthy: true,
  datacenter: 'dc1',
};

describe('reading the snapshot file', () => {
  test('what the writer writes, the reader reads back (one schema)', () => {
    const text = serializeSnapshot({ orders: [instance], payments: [] });
    assert.deepEqual(parseSnapshotFile(text), { services: { orders: [instance], payments: [] } });
  });

  for (const [kind, text] of Object.entries(badSnapshotFiles(instance))) {
    test(`${kind}: refused with what is wrong`, () => {
      const result = parseSnapshotFile(text);
      assert.ok('problem' in result, `${kind} was accepted`);
      assert.ok(result.problem.length > 5, result.problem);
    });
  }

  test('the problem names where it is', () => {
    assert.deepEqual(parseSnapshotFile('{"orders":[null]}'), { problem: 'orders[0]: Invalid input: expected object, received null' });
    assert.deepEqual(parseSnapshotFile(''), { problem: 'the file is empty' });
  });

  test('a bad file is logged and ignored; a missing one is the first start, said nothing of', async () => {
    const scratch = await snapshotScratch();
    try {
      const { stream, capture } = captureLog();
      const logger = createLogger({ destination: stream, level: 'debug' });
      assert.deepEqual(loadSnapshotFile(scratch.file, logger), {});
      writeFileSync(scratch.file, '{"orders":{}}');
      assert.deepEqual(loadSnapshotFile(scratch.file, logger), {});
      await capture.waitFor((line) => line.msg === 'snapshot file ignored: it does not hold a valid snapshot');
      assert.equal(capture.lines.length, 1);
      assert.equal(capture.lines[0]!.file, scratch.file);
      assert.match(String(capture.lines[0]!.problem), /^orders: Invalid input: expected array/);
    } finally {
      await scratch.remove();
    }
  });

  test('legacy files: extra fields are dropped, an ejected instance is readmitted', () => {
    const legacy = JSON.stringify({ orders: [{ ...instance, healthy: false, ejected: true, origin: 'http://127.0.0.1:8080', city: 'shanghai' }] });
    assert.deepEqual(parseSnapshotFile(legacy), { services: { orders: [instance] } });
  });
});

describe('writing the snapshot file', () => {
  test('atomically: a temporary file renamed over the old one, none left behind', async () => {
    const scratch = await snapshotScratch();
    try {
      writeFileSync(scratch.file, 'old');
      await writeAtomically(scratch.file, serializeSnapshot({ orders: [instance] }));
      assert.deepEqual(parseSnapshotFile(readFileSync(scratch.file, 'utf8')), { services: { orders: [instance] } });
      assert.deepEqual(readdirSync(dirname(scratch.file)), ['snapshot.json']);
    } finally {
      await scratch.remove();
    }
  });

  test('a change every 600 ms is written at once, then once a second while changes keep coming, never more often', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const writes: { at: number; version: number }[] = [];
    let version = 0;
    const writer = new SnapshotWriter({
      file: 'unused',
      logger: createLogger({ level: 'silent' }),
      collect: () => ({ orders: [{ ...instance, port: 1000 + version }] }),
      save: async (_file, text) => void writes.push({ at: Date.now(), version: (JSON.parse(text) as { orders: InstanceSpec[] }).orders[0]!.port - 1000 }),
    });
    const start = Date.now();
    for (let change = 0; change < 10; change++) {
      version = change;
      writer.changed();
      await writer.settled();
      t.mock.timers.tick(600);
      await writer.settled();
    }
    t.mock.timers.tick(2000);
    await writer.settled();
    const times = writes.map((w) => w.at - start);
    assert.equal(times[0], 0, 'the first change is written at once (leading)');
    for (let i = 1; i < times.length; i++) assert.ok(times[i]! - times[i - 1]! >= 1000, `writes ${times.join(', ')} ms: two within a second`);
    // 10 changes over 6 s: a write every second while they come (a trailing debounce would write once, at the end)
    assert.ok(times.length >= 6, `writes at ${times.join(', ')} ms`);
    assert.ok(times.filter((at) => at < 5400).length >= 5, `writes at ${times.join(', ')} ms`);
    assert.equal(writes.at(-1)!.version, 9, 'the last change is written (trailing)');
    writer.stop();
  });

  test('flush writes a change that waits for its turn at once (what a stopping gateway does)', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    const saved: number[] = [];
    const writer = new SnapshotWriter({
      file: 'unused',
      logger: createLogger({ level: 'silent' }),
      collect: () => ({ orders: [instance] }),
      save: async () => void saved.push(Date.now()),
    });
    writer.changed();
    writer.changed();
    await writer.settled();
    assert.equal(saved.length, 1, 'the second change waits');
    writer.flush();
    await writer.settled();
    assert.equal(saved.length, 2);
    writer.flush();
    t.mock.timers.tick(5000);
    await writer.settled();
    assert.equal(saved.length, 2, 'nothing left to write');
  });

  test('a failed write is logged and the next change is written again', async () => {
    const { stream, capture } = captureLog();
    let fail = true;
    const saved: string[] = [];
    const writer = new SnapshotWriter({
      file: '/nonexistent/dir/snapshot.json',
      logger: createLogger({ destination: stream, level: 'debug' }),
      collect: () => ({ orders: [instance] }),
      save: async (_file, text) => {
        if (fail) throw new Error('ENOSPC: no space left on device');
        saved.push(text);
      },
    });
    mock.timers.enable({ apis: ['setTimeout', 'Date'] });
    try {
      writer.changed();
      await writer.settled();
      await capture.waitFor((line) => line.msg === 'could not write the discovery snapshot file');
      fail = false;
      writer.changed();
      mock.timers.tick(1000);
      await writer.settled();
      assert.equal(saved.length, 1);
    } finally {
      mock.timers.reset();
      writer.stop();
    }
  });
});
