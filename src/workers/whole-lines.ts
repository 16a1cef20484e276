// Every worker's log reaches stdout through the primary, cut at line ends: the primary is the only writer of
// stdout, so lines from different workers never mix inside a line, whatever the reader (a pipe, a file, a TTY).
import type { Readable } from 'node:stream';

/** The primary's log destination (SonicBoom): `write` answers false when its buffer is over its mark. */
export interface LineSink {
  write(text: string): boolean;
  once(event: 'drain', listener: () => void): unknown;
}

/** Writes `from` to `sink` in whole lines; a slow sink pauses `from` (the worker then buffers, bounded). */
export function forwardWholeLines(from: Readable, sink: LineSink): void {
  let partial = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    const end = chunk.lastIndexOf('\n');
    if (end === -1) {
      partial += chunk;
      return;
    }
    const text = partial + chunk.slice(0, end + 1);
    partial = chunk.slice(end + 1);
    if (!sink.write(text)) {
      from.pause();
      sink.once('drain', () => from.resume());
    }
  });
  // a worker that died mid-line: what it wrote still goes out, ended, so the next line starts clean
  from.on('end', () => {
    if (partial !== '') sink.write(`${partial}\n`);
    partial = '';
  });
}
