// One pino logger for the process. The destination is asynchronous (SonicBoom, sync: false) so
// logging never blocks the event loop; `flushLogger` drains it before exit. Lines are batched up to
// 16 KiB (one write syscall per ~35 access lines under load), and the periodic flush bounds how long a line waits on a quiet gateway.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { destination?: DestinationStream; level?: string } = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false, minLength: 16384, maxWrite: 65536, periodicFlush: 1000 });
  return pino(
    {
      level: options.level ?? process.env.ZONEGATE_LOG_LEVEL ?? 'info',
      base: null,
      // `time` stays pino's epoch milliseconds, and there is no `redact`: both cost microseconds per access
      // line, and no log call passes headers (the access log is a fixed set of fields), so secrets cannot reach it.
    },
    destination,
  );
}

export function flushLogger(logger: Logger): Promise<void> {
  batches.get(logger)?.flush();
  return new Promise((resolve) => logger.flush(() => resolve()));
}

interface Destination {
  write(text: string): void;
}
type PinoInternals = Record<symbol, Destination>;

/**
 * Access lines of one event-loop turn, written to the destination in one call when the turn ends: the
 * destination's per-write bookkeeping (byte counting, buffer joins) is paid once per turn, not per request.
 */
class LineBatch {
  readonly #destination: Destination;
  #text = '';

  constructor(destination: Destination) {
    this.#destination = destination;
  }

  add(line: string): void {
    if (this.#text === '') setImmediate(this.flush);
    this.#text += line;
  }

  readonly flush = (): void => {
    if (this.#text === '') return;
    const text = this.#text;
    this.#text = '';
    this.#destination.write(text);
  };
}

const batches = new WeakMap<Logger, LineBatch>();

function batchOf(logger: Logger): LineBatch {
  let batch = batches.get(logger);
  if (batch === undefined) {
    batch = new LineBatch((logger as unknown as PinoInternals)[pino.symbols.streamSym]!);
    batches.set(logger, batch);
  }
  return batch;
}

/**
 * Writes `fields` as one info line in pino's own format (`{"level":30,"time":…,…fields,"msg":…}`) to the
 * logger's destination. For the per-request access line only: pino's per-key serialiser costs ~10 µs per
 * 23-field line under load, one JSON.stringify of a flat object of plain values about 1 µs, and the bytes
 * are the same. Honours the logger's level; lines are batched per event-loop turn (LineBatch).
 */
export function writeInfoLine(logger: Logger, fields: object, msg: string): void {
  if (!logger.isLevelEnabled('info')) return;
  const json = JSON.stringify(fields);
  batchOf(logger).add(`{"level":30,"time":${Date.now()},${json.slice(1, -1)},"msg":${JSON.stringify(msg)}}\n`);
}
