// One pino logger for the process. The destination is asynchronous (SonicBoom, sync: false) so
// logging never blocks the event loop; `flushLogger` drains it before exit.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  destination?: DestinationStream;
  level?: string;
  /**
   * How long access lines may wait in memory before they are handed to the destination (they go at
   * once when ACCESS_BATCH_BYTES have gathered). Like nginx's `access_log … flush=` and Envoy's access-log flush
   * interval: batching is what keeps the access log cheap under load. 0 hands them over at the end of
   * each event-loop turn.
   */
  accessFlushMs?: number;
  /** fields on every line but access lines (a worker of `zonegate run --workers` names itself) */
  base?: Record<string, unknown>;
}

const DEFAULT_ACCESS_FLUSH_MS = 100;
/** Access text handed to the destination in one write; SonicBoom re-measures its pending buffer on every write, so few large writes matter. */
export const ACCESS_BATCH_BYTES = 262_144;

/** Log text that may wait for a slow reader of stdout; beyond it lines are dropped rather than held. */
export const MAX_PENDING_LOG_BYTES = 16 * 1024 * 1024;
const DROP_WARNING_DELAY_MS = 10_000;

export interface BoundedLogStream {
  readonly stream: ReturnType<typeof pino.destination>;
  /** lines dropped so far because the reader fell more than MAX_PENDING_LOG_BYTES behind */
  droppedLines(): number;
}

/**
 * The log stream on `fd`: asynchronous, and bounded. When the reader of stdout (a container runtime, a log
 * shipper) falls behind, up to MAX_PENDING_LOG_BYTES wait in memory and later lines are dropped and counted:
 * a stalled reader costs log lines, never the process's memory. `onDrop` hears of each dropped write.
 */
export function boundedLogStream(fd: number, onDrop?: () => void): BoundedLogStream {
  // No minLength: access lines arrive already batched, and the process's other lines (warnings, errors) go out at once.
  // String mode, though SonicBoom's buffer mode would skip measuring and re-encoding each batch: in 4.2.1 a failed
  // write followed by flushSync (pino's exit hook) puts its pending buffers out of step with their lengths, and
  // writes NUL bytes and cut lines.
  const stream = pino.destination({ dest: fd, sync: false, maxWrite: 4 * ACCESS_BATCH_BYTES, maxLength: MAX_PENDING_LOG_BYTES });
  let dropped = 0;
  stream.on('drop', (text: string) => {
    for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) dropped += 1;
    onDrop?.();
  });
  return { stream, droppedLines: () => dropped };
}

export function createLogger(options: LoggerOptions = {}): Logger {
  let warnLater: (() => void) | undefined;
  const bounded = options.destination === undefined ? boundedLogStream(1, () => warnLater?.()) : undefined;
  const destination = options.destination ?? bounded!.stream;
  let batch: LineBatch | undefined;
  const logger = pino(
    {
      level: options.level ?? process.env.ZONEGATE_LOG_LEVEL ?? 'info',
      base: options.base ?? null,
      // Any other line first hands over the access lines gathered before it, so the log stays in order.
      hooks: {
        logMethod(args, method) {
          batch?.flush();
          method.apply(this, args);
        },
      },
      // `time` stays pino's epoch milliseconds, and there is no `redact`: both cost microseconds per access
      // line, and no log call passes headers (the access log is a fixed set of fields), so secrets cannot reach it.
    },
    destination,
  );
  batch = new LineBatch(streamOf(logger), options.accessFlushMs ?? DEFAULT_ACCESS_FLUSH_MS);
  batches.set(logger, batch);
  if (bounded) warnLater = dropWarning(logger, bounded);
  return logger;
}

/** At most one warning per DROP_WARNING_DELAY_MS, with the running total; it reaches the log once the reader catches up. */
function dropWarning(logger: Logger, bounded: BoundedLogStream): () => void {
  let pending: NodeJS.Timeout | undefined;
  return () => {
    pending ??= setTimeout(() => {
      pending = undefined;
      logger.warn({ droppedLines: bounded.droppedLines() }, 'log lines dropped: stdout is read more slowly than the gateway writes');
    }, DROP_WARNING_DELAY_MS).unref();
  };
}

/** How long stopping waits for a slow stdout reader to take the last lines. */
const FLUSH_TIMEOUT_MS = 2_000;

/** Hands over pending access lines and waits until the destination has written everything (or FLUSH_TIMEOUT_MS). */
export async function flushLogger(logger: Logger): Promise<void> {
  batches.get(logger)?.flush();
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  await drained(streamOf(logger) as PendingWrites);
}

/** SonicBoom's own state: its flush() returns at once without minLength, while a write may still be pending. */
interface PendingWrites {
  readonly _len?: unknown;
  readonly _writing?: unknown;
  once?(event: 'drain' | 'error' | 'close', listener: () => void): unknown;
  off?(event: 'drain' | 'error' | 'close', listener: () => void): unknown;
}

function drained(stream: PendingWrites): Promise<void> {
  const idle = (): boolean => typeof stream._len !== 'number' || (stream._len === 0 && stream._writing !== true);
  if (idle() || stream.once === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      for (const event of ['drain', 'error', 'close'] as const) stream.off?.(event, done);
      resolve();
    };
    const timer = setTimeout(done, FLUSH_TIMEOUT_MS);
    for (const event of ['drain', 'error', 'close'] as const) stream.once!(event, done);
  });
}

interface Destination {
  write(text: string): void;
}
type PinoInternals = Record<symbol, Destination>;

/**
 * Access lines gathered in memory and written to the destination in few, large writes. They are copied into a
 * buffer as they come: holding them as strings for up to the flush window built a rope of thousands of pieces that
 * outlived the young generation (promoted, marked, then measured and flattened by the destination), which cost more
 * per request than building the lines.
 */
class LineBatch {
  readonly #destination: Destination;
  readonly #flushMs: number;
  /** room for a full batch and the line that completes it */
  readonly #buffer = Buffer.allocUnsafe(2 * ACCESS_BATCH_BYTES);
  #bytes = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(destination: Destination, flushMs: number) {
    this.#destination = destination;
    this.#flushMs = flushMs;
  }

  add(line: string): void {
    // UTF-8 needs at most 3 bytes per UTF-16 unit: a line that might not fit goes after what is gathered.
    if (this.#bytes + line.length * 3 > this.#buffer.length) {
      this.flush();
      if (line.length * 3 > this.#buffer.length) return this.#destination.write(line);
    }
    if (this.#bytes === 0) this.#scheduleFlush();
    this.#bytes += this.#buffer.write(line, this.#bytes);
    if (this.#bytes >= ACCESS_BATCH_BYTES) this.flush();
  }

  #scheduleFlush(): void {
    if (this.#flushMs === 0) {
      setImmediate(this.flush);
    } else if (this.#timer === undefined) {
      // unref: a pending access line never keeps the process alive; stop() flushes it.
      this.#timer = setTimeout(this.flush, this.#flushMs).unref();
    }
  }

  readonly flush = (): void => {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#bytes === 0) return;
    const text = this.#buffer.toString('utf8', 0, this.#bytes);
    this.#bytes = 0;
    this.#destination.write(text);
  };
}

const batches = new WeakMap<Logger, LineBatch>();

function streamOf(logger: Logger): Destination {
  return (logger as unknown as PinoInternals)[pino.symbols.streamSym]!;
}

/**
 * The logger's destination, for text that is already whole log lines: the primary of `zonegate run --workers`
 * passes its workers' lines on through it, so stdout has one writer and one policy for a slow reader.
 */
export function logDestination(logger: Logger): { write(text: string): boolean; once(event: 'drain', listener: () => void): unknown } {
  return streamOf(logger) as unknown as ReturnType<typeof logDestination>;
}

/** A logger made elsewhere (a child, a caller's own pino) batches with the default window. */
function batchOf(logger: Logger): LineBatch {
  let batch = batches.get(logger);
  if (batch === undefined) {
    batch = new LineBatch(streamOf(logger), DEFAULT_ACCESS_FLUSH_MS);
    batches.set(logger, batch);
  }
  return batch;
}

/**
 * Writes `fields` as one info line in pino's own format (`{"level":30,"time":…,…fields,"msg":…}`) to the
 * logger's destination, batched (LineBatch). For lines written per request; honours the logger's level.
 */
export function writeInfoLine(logger: Logger, fields: object, msg: string): void {
  writeInfoMembers(logger, JSON.stringify(fields).slice(1, -1), msg);
}

/**
 * Like writeInfoLine, for a caller that has already serialised its fields as JSON object members
 * (`"a":1,"b":"x"`, no braces): the access line is built by hand, which costs a fraction of what pino's per-key
 * serialiser or a JSON.stringify of a freshly built object cost per request.
 */
export function writeInfoMembers(logger: Logger, members: string, msg: string): void {
  infoMembersWriter(logger, msg)(members);
}

/**
 * writeInfoMembers for one message, bound once: the line's tail and the logger's batch are looked up when the writer
 * is made, not per line (the access log writes one per request).
 */
export function infoMembersWriter(logger: Logger, msg: string): (members: string) => void {
  const tail = `,"msg":${jsonString(msg)}}\n`;
  const batch = batchOf(logger);
  return (members) => {
    if (logger.levelVal > INFO_LEVEL) return;
    batch.add(`{"level":30,"time":${Date.now()},${members}${tail}`);
  };
}
const INFO_LEVEL = 30;

/** What JSON.stringify would escape in a string: quotes, backslashes, control characters and lone surrogates. */
const NEEDS_ESCAPING = /["\\\u0000-\u001f\ud800-\udfff]/;

/** `text` as a JSON string literal; JSON.stringify only when something in it needs escaping. */
export function jsonString(text: string): string {
  return NEEDS_ESCAPING.test(text) ? JSON.stringify(text) : `"${text}"`;
}
