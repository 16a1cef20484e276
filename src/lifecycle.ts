// How a zonegate process ends: on SIGTERM/SIGINT (drained), or on an error nothing caught (exit 1). Shared by the
// single gateway, the primary of `zonegate run --workers` and its workers.
import { once } from 'node:events';
import { flushLogger, type Logger } from './observability/logger.ts';

export function stopOnSignal(): Promise<unknown> {
  return Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]);
}

/**
 * What the process does with an error nothing caught (a bug, or a library throwing from a callback): the state it
 * leaves is unknown, so the gateway stops accepting (`stopAccepting`: the drain begins) and exits with 1 for its
 * supervisor to restart it. It first says why in its own log (a fatal line with the stack; the stack also goes to
 * stderr, as Node would print it) and writes out the access lines still gathered in memory, which Node's default
 * handling would lose; requests in flight get that long to finish.
 */
export function exitOnFatalError(logger: Logger, stopAccepting: () => void): (err: unknown, origin: NodeJS.UncaughtExceptionOrigin) => void {
  let exiting = false;
  return (err, origin) => {
    const stack = err instanceof Error ? (err.stack ?? String(err)) : String(err);
    process.stderr.write(`${stack}\n`);
    if (exiting) return; // a further error while the log is written out: the exit is already on its way
    exiting = true;
    process.exitCode = 1;
    try {
      logger.fatal({ err: stack, origin }, 'unexpected error: the gateway exits');
      stopAccepting();
    } catch {
      // the log or the listeners failed too: stderr has the stack, and the exit follows
    }
    // flushLogger gives a slow reader of stdout a bounded time.
    void flushLogger(logger)
      .catch(() => {})
      .finally(() => process.exit(1));
  };
}
