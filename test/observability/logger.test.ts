// Access lines are batched before they reach the destination: few large writes instead of one per
// request, handed over when ACCESS_BATCH_BYTES (256 KiB) have gathered, when the flush window ends, or on flushLogger.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ACCESS_BATCH_BYTES,
  boundedLogStream,
  createLogger,
  flushLogger,
  MAX_PENDING_LOG_BYTES,
  writeInfoLine,
} from '../../src/observability/logger.ts';
import { pollUntil } from '../support/http.ts';

function recordingDestination(): { write(text: string): void; writes: string[] } {
  const writes: string[] = [];
  return { writes, write: (text: string) => void writes.push(text) };
}

const FIELDS = { reqId: 'r-1', path: '/api/orders/7', status: 200, padding: 'x'.repeat(200) };

function linesOf(writes: readonly string[]): Record<string, unknown>[] {
  return writes.join('').split('\n').filter((line) => line !== '').map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe('access line batching', () => {
  it('writes pino-shaped lines, many per write once ACCESS_BATCH_BYTES have gathered', () => {
    const destination = recordingDestination();
    const logger = createLogger({ destination, accessFlushMs: 60_000 });
    let written = 0;
    while (destination.writes.length === 0 && written < 10_000) {
      writeInfoLine(logger, FIELDS, 'access');
      written += 1;
    }
    assert.equal(destination.writes.length, 1, 'the full batch goes in one write');
    const batch = destination.writes[0]!;
    const lineLength = batch.length / written;
    assert.ok(written > 50, `${written} lines went in the first write`);
    assert.ok(batch.length >= ACCESS_BATCH_BYTES && batch.length - lineLength < ACCESS_BATCH_BYTES, 'the write happened when ACCESS_BATCH_BYTES had gathered, not before');
    const lines = linesOf(destination.writes);
    assert.equal(lines.length, written);
    assert.deepEqual(lines[0], { level: 30, time: lines[0]!.time, ...FIELDS, msg: 'access' });
    assert.equal(typeof lines[0]!.time, 'number');
  });

  it('hands a lone line over when the flush window ends, without more traffic', async () => {
    const destination = recordingDestination();
    const logger = createLogger({ destination, accessFlushMs: 20 });
    writeInfoLine(logger, FIELDS, 'access');
    assert.equal(destination.writes.length, 0);
    await pollUntil(() => (destination.writes.length > 0 ? true : undefined), 2_000, 'the line after the flush window');
    assert.equal(linesOf(destination.writes).length, 1);
  });

  it('writes what is pending on flushLogger, and nothing below the logger level', async () => {
    const destination = recordingDestination();
    const logger = createLogger({ destination, accessFlushMs: 60_000 });
    writeInfoLine(logger, FIELDS, 'access');
    await flushLogger(logger);
    assert.equal(linesOf(destination.writes).length, 1);

    const quiet = recordingDestination();
    const quietLogger = createLogger({ destination: quiet, level: 'warn', accessFlushMs: 0 });
    writeInfoLine(quietLogger, FIELDS, 'access');
    await flushLogger(quietLogger);
    assert.equal(quiet.writes.length, 0);
  });
});

describe('log order and shutdown', () => {
  it('writes the access lines gathered so far before any other line', () => {
    const destination = recordingDestination();
    const logger = createLogger({ destination, accessFlushMs: 60_000 });
    for (let index = 0; index < 3; index += 1) writeInfoLine(logger, FIELDS, 'access');
    logger.warn('something happened');
    assert.deepEqual(
      linesOf(destination.writes).map((line) => line.msg),
      ['access', 'access', 'access', 'something happened'],
    );
  });

  it('flushLogger resolves only once a slow reader has taken the lines', async () => {
    const { dir, readFd, writeFd } = unreadFifo();
    const { stream } = boundedLogStream(writeFd);
    const logger = createLogger({ destination: stream, accessFlushMs: 60_000 });
    try {
      const lines = 4_000; // ~1 MB, far more than a pipe holds
      for (let index = 0; index < lines; index += 1) writeInfoLine(logger, FIELDS, 'access');
      const totalBytes = lines * (JSON.stringify({ level: 30, time: Date.now(), ...FIELDS, msg: 'access' }).length + 1);
      let flushed = false;
      const flushing = flushLogger(logger).then(() => (flushed = true));
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(flushed, false, 'nothing has read the lines yet');

      let receivedBytes = 0;
      let receivedAtFlush = -1;
      void flushing.then(() => (receivedAtFlush = receivedBytes));
      const reader = new Socket({ fd: readFd, readable: true, writable: false });
      reader.on('data', (chunk: Buffer) => (receivedBytes += chunk.length));
      await flushing;
      await new Promise((resolve) => setImmediate(resolve));
      reader.destroy();
      // Everything was in the pipe when flushLogger resolved: the reader had all but at most one pipe's worth.
      assert.ok(receivedAtFlush >= totalBytes - 65_536 * 2, `${receivedAtFlush} of ~${totalBytes} bytes read when flushLogger resolved`);
    } finally {
      stream.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A FIFO whose read end is open (so writes do not fail) but not read. */
function unreadFifo(): { dir: string; readFd: number; writeFd: number } {
  const dir = mkdtempSync(join(tmpdir(), 'zonegate-log-'));
  const fifo = join(dir, 'stdout');
  execFileSync('mkfifo', [fifo]);
  const readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  return { dir, readFd, writeFd: openSync(fifo, 'w') };
}

describe('a stdout nobody reads', () => {
  it('holds at most MAX_PENDING_LOG_BYTES, counts what it drops, and writes again once the reader catches up', async () => {
    const { dir, readFd, writeFd } = unreadFifo();
    let drops = 0;
    const { stream, droppedLines } = boundedLogStream(writeFd, () => (drops += 1));
    const line = `${JSON.stringify({ msg: 'access', padding: 'x'.repeat(1000) })}\n`;
    const batch = line.repeat(Math.floor(ACCESS_BATCH_BYTES / line.length));
    const linesPerBatch = batch.length / line.length;
    try {
      // Nothing reads: the pipe fills, then the stream's memory, then writes are dropped.
      const batches = Math.ceil((2 * MAX_PENDING_LOG_BYTES) / batch.length);
      for (let index = 0; index < batches; index += 1) stream.write(batch);
      assert.ok(drops > 0, 'writes past the limit are dropped');
      assert.equal(droppedLines(), drops * linesPerBatch, 'every line of a dropped write is counted');
      const held = (batches - drops) * batch.length;
      assert.ok(held <= MAX_PENDING_LOG_BYTES + batch.length + 65_536, `held ${held} bytes`);

      // The reader catches up: what was held arrives, and so does a line written afterwards.
      const reader = new Socket({ fd: readFd, readable: true, writable: false });
      let received = '';
      reader.setEncoding('utf8').on('data', (text: string) => {
        received = received.length > 4096 ? received.slice(-4096) + text : received + text;
      });
      const marker = `${JSON.stringify({ msg: 'after the stall' })}\n`;
      await pollUntil(() => (stream.write(marker) && received.includes('after the stall') ? true : undefined), 20_000, 'the line written after the stall');
      reader.destroy();
    } finally {
      stream.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
