// Access lines are batched before they reach the destination: few large writes instead of one per
// request, handed over when ACCESS_BATCH_BYTES (256 KiB) have gathered, when the flush window ends, or on flushLogger.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACCESS_BATCH_BYTES, createLogger, flushLogger, writeInfoLine } from '../../src/observability/logger.ts';
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
