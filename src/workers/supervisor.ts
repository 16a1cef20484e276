// The primary's workers: forks them, starts the first alone when the configured port is 0 (the others then bind
// the port it got), restarts one that dies (with backoff, logged), and drains them all on stop.
import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../observability/logger.ts';
import { isToPrimary, PendingAnswers, type Question, type StartMessage, type ToPrimary, type ToWorker } from './messages.ts';

/** A restart waits RESTART_BASE_MS, doubling for each quick failure in a row, up to RESTART_MAX_MS. */
const RESTART_BASE_MS = 100;
const RESTART_MAX_MS = 10_000;
/** a worker that ran this long before it died counts as healthy: its replacement starts after RESTART_BASE_MS */
const STABLE_AFTER_MS = 10_000;
const ASK_TIMEOUT_MS = 2_000;

/** The wait before a replacement after `failures` quick failures in a row (1 for the first). */
export function restartDelay(failures: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** (Math.max(1, failures) - 1));
}

/** One of the N places a worker runs in; a restart keeps the index. */
export interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  listening: boolean;
  startedAt: number;
  /** quick failures in a row (reset by a worker that ran STABLE_AFTER_MS) */
  failures: number;
  restarts: number;
  restartTimer: NodeJS.Timeout | undefined;
  pending: PendingAnswers;
}

export interface SupervisorOptions {
  readonly workers: number;
  readonly logger: Logger;
  /** what a new worker in `index` starts with (the running config, discovery's instances), for `port` */
  startMessage(index: number, port: number): StartMessage;
  /** a worker's messages other than answers and `listening` */
  onMessage(slot: Slot, message: ToPrimary): void;
  /** a new worker's stdout, to be written out in whole lines */
  output(worker: Worker): void;
  /** a worker now listens (at start, or a replacement) */
  listening?(slot: Slot): void;
}

export class Supervisor {
  readonly slots: readonly Slot[];
  readonly #options: SupervisorOptions;
  #port = 0;
  #started = false;
  #stopping = false;
  readonly #exits = new Map<Worker, Promise<number | string>>();

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.slots = Array.from({ length: options.workers }, (_, i) => ({
      index: i + 1,
      worker: undefined,
      listening: false,
      startedAt: 0,
      failures: 0,
      restarts: 0,
      restartTimer: undefined,
      pending: new PendingAnswers(),
    }));
    // structured clone: a Config crosses as it is; stdout comes through the primary so lines stay whole
    cluster.setupPrimary({ serialization: 'advanced', stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  }

  /** The port every worker binds (the configured one, or the one the first worker got for port 0). */
  get port(): number {
    return this.#port;
  }

  /** Starts every worker; resolves once all listen, rejects when one exits before it listens. */
  async start(configuredPort: number): Promise<void> {
    this.#port = configuredPort;
    const [first, ...others] = this.slots;
    if (configuredPort === 0) this.#port = await this.#fork(first!);
    await Promise.all([...(configuredPort === 0 ? [] : [first!]), ...others].map((slot) => this.#fork(slot)));
    this.#started = true;
  }

  live(): Slot[] {
    return this.slots.filter((slot) => slot.worker !== undefined && slot.listening);
  }

  send(slot: Slot, message: ToWorker): void {
    const worker = slot.worker;
    if (worker?.isConnected()) worker.send(message);
  }

  broadcast(message: ToWorker): void {
    for (const slot of this.slots) this.send(slot, message);
  }

  /** Asks one worker; rejects when it does not answer within ASK_TIMEOUT_MS or exits first. */
  ask(slot: Slot, question: Question, timeoutMs = ASK_TIMEOUT_MS): Promise<unknown> {
    const { id, answer } = slot.pending.open(timeoutMs, `${question.what} from worker ${slot.index}`);
    this.send(slot, { kind: 'zonegate:ask', id, question });
    return answer;
  }

  /** Sends a config to every listening worker; resolves with the indexes of those that did not apply it. */
  async configure(message: (id: number) => ToWorker, timeoutMs: number): Promise<number[]> {
    const results = await Promise.all(
      this.live().map(async (slot) => {
        const { id, answer } = slot.pending.open(timeoutMs, `the config in worker ${slot.index}`);
        this.send(slot, message(id));
        const applied = await answer.catch(() => false);
        return applied === true ? undefined : slot.index;
      }),
    );
    return results.filter((index) => index !== undefined);
  }

  /**
   * SIGTERM to every worker (each drains within gateway.drainTimeout), SIGKILL to those still running after
   * `deadlineMs`. Resolves with whether every worker exited 0.
   */
  async stop(deadlineMs: number): Promise<boolean> {
    this.#stopping = true;
    for (const slot of this.slots) clearTimeout(slot.restartTimer);
    const exits = [...this.#exits];
    for (const [worker] of exits) if (worker.process.exitCode === null) worker.process.kill('SIGTERM');
    const deadline = setTimeout(() => {
      for (const [worker] of exits) {
        if (worker.process.exitCode !== null || worker.process.signalCode !== null) continue;
        this.#options.logger.error({ pid: worker.process.pid }, 'a worker did not finish draining in time; killing it');
        worker.process.kill('SIGKILL');
      }
    }, deadlineMs);
    const ends = await Promise.all(exits.map(([, exit]) => exit));
    clearTimeout(deadline);
    return ends.every((end) => end === 0);
  }

  /** Forks a worker into `slot`; resolves with the port it listens on. */
  #fork(slot: Slot): Promise<number> {
    const worker = cluster.fork({ ZONEGATE_WORKER: String(slot.index) });
    slot.worker = worker;
    slot.listening = false;
    slot.startedAt = Date.now();
    slot.pending = new PendingAnswers();
    this.#options.output(worker);
    const { promise: listening, resolve, reject } = Promise.withResolvers<number>();
    const exit = new Promise<number | string>((done) => worker.once('exit', (code, signal) => done(signal ?? code)));
    this.#exits.set(worker, exit);
    worker.on('message', (message: unknown) => {
      if (!isToPrimary(message)) return;
      if (message.kind === 'zonegate:answer') return slot.pending.settle(message);
      if (message.kind === 'zonegate:listening') {
        slot.listening = true;
        this.#options.listening?.(slot);
        return resolve(message.port);
      }
      this.#options.onMessage(slot, message);
    });
    // a worker forked mid-stop (a restart timer that had fired) is stopped at once
    worker.once('online', () => this.#stopping && worker.process.kill('SIGTERM'));
    worker.once('error', () => {}); // a send to a worker that just died; its exit handles it
    void exit.then((end) => {
      this.#exits.delete(worker);
      slot.pending.rejectAll(`worker ${slot.index} exited`);
      if (slot.worker === worker) {
        slot.worker = undefined;
        slot.listening = false;
      }
      reject(new Error(`worker ${slot.index} (pid ${worker.process.pid}) exited (${end}) before it listened`));
      if (this.#started && !this.#stopping) this.#restart(slot, worker, end);
    });
    const index = slot.index;
    worker.send({ ...this.#options.startMessage(index, this.#port) });
    return listening;
  }

  #restart(slot: Slot, worker: Worker, end: number | string): void {
    if (Date.now() - slot.startedAt >= STABLE_AFTER_MS) slot.failures = 0;
    slot.failures += 1;
    const delay = restartDelay(slot.failures);
    this.#options.logger.warn({ worker: slot.index, pid: worker.process.pid, exit: end, restartInMs: delay }, 'worker exited; starting another in its place');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.#stopping) return;
      slot.restarts += 1;
      this.#fork(slot).then(
        () => this.#options.logger.info({ worker: slot.index, pid: slot.worker?.process.pid, restarts: slot.restarts }, 'worker restarted'),
        () => {}, // it exited again: its exit schedules the next try
      );
    }, delay);
  }
}
