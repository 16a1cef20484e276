// Worker output reaches stdout in whole lines, however the pipe cuts it, and a slow stdout holds the worker back.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, test } from 'node:test';
import { forwardWholeLines } from '../../src/workers/whole-lines.ts';

class Sink extends EventEmitter {
  readonly writes: string[] = [];
  full = false;
  write(text: string): boolean {
    this.writes.push(text);
    return !this.full;
  }
}

describe('worker output in whole lines', () => {
  test('two workers writing lines cut anywhere: every write holds whole lines only', async () => {
    const sink = new Sink();
    const [a, b] = [new PassThrough(), new PassThrough()];
    forwardWholeLines(a, sink);
    forwardWholeLines(b, sink);
    const lineA = `${JSON.stringify({ worker: 1, pad: 'a'.repeat(5000) })}\n`;
    const lineB = `${JSON.stringify({ worker: 2, pad: 'b'.repeat(3000) })}\n`;
    const textA = lineA.repeat(4);
    const textB = lineB.repeat(4);
    // chunks of awkward sizes, interleaved between the two sources
    for (let at = 0; at < Math.max(textA.length, textB.length); at += 1337) {
      if (at < textA.length) a.write(textA.slice(at, at + 1337));
      if (at < textB.length) b.write(textB.slice(at, at + 1337));
      await new Promise((resolve) => setImmediate(resolve));
    }
    a.end();
    b.end();
    await new Promise((resolve) => setImmediate(resolve));
    for (const write of sink.writes) {
      assert.ok(write.endsWith('\n'));
      for (const line of write.slice(0, -1).split('\n')) assert.ok(line === lineA.trim() || line === lineB.trim(), 'a whole line');
    }
    assert.equal(sink.writes.join('').length, textA.length + textB.length);
  });

  test('a partial last line of a worker that died is ended, so the next line starts clean', async () => {
    const sink = new Sink();
    const from = new PassThrough();
    forwardWholeLines(from, sink);
    from.end('{"cut":');
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(sink.writes, ['{"cut":\n']);
  });

  test('a full stdout pauses the worker\'s output until it drains', async () => {
    const sink = new Sink();
    sink.full = true;
    const from = new PassThrough();
    forwardWholeLines(from, sink);
    from.write('one\n');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(from.isPaused(), true);
    sink.full = false;
    sink.emit('drain');
    assert.equal(from.isPaused(), false);
  });
});
