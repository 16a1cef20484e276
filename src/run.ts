// `zonegate run`: load routes.yaml, start the gateway, reload on change or SIGHUP, drain on SIGTERM/SIGINT.
import { once } from 'node:events';
import { ConfigError } from './config/errors.ts';
import { loadConfigFileWithText } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { watchConfig } from './config/watch.ts';
import { Gateway } from './gateway.ts';
import { startChunkReclaim } from './memory.ts';
import { flushLogger, type Logger } from './observability/logger.ts';

export interface RunOptions {
  /** adjusts every loaded config before it is applied (the demo turns routing headers on) */
  readonly prepare?: (config: Config) => Config;
  readonly onStarted?: (gateway: Gateway) => void | Promise<void>;
  /** resolves when the gateway should stop; default: SIGTERM or SIGINT */
  readonly stopSignal?: Promise<unknown>;
}

export function stopOnSignal(): Promise<unknown> {
  return Promise.race([once(process, 'SIGTERM'), once(process, 'SIGINT')]);
}

export async function runGateway(configPath: string, options: RunOptions = {}): Promise<number> {
  // SIGHUP's default action ends the process, so it is handled from the start. Until the config watcher exists
  // a hangup needs no action: the watcher's first look, right after start, picks up whatever changed meanwhile.
  let onHangup = (): void => {};
  const hangup = (): void => onHangup();
  process.on('SIGHUP', hangup);
  try {
    return await serve(configPath, options, (handler) => (onHangup = handler));
  } finally {
    process.off('SIGHUP', hangup);
  }
}

async function serve(configPath: string, options: RunOptions, onHangup: (handler: () => void) => void): Promise<number> {
  const prepare = options.prepare ?? ((config: Config) => config);
  let loaded;
  try {
    loaded = await loadConfigFileWithText(configPath);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.format());
    return 1;
  }
  const stop = options.stopSignal ?? stopOnSignal();
  const gateway = await Gateway.start(prepare(loaded.config));
  const fatal = exitOnFatalError(gateway.logger, () => void gateway.stop().catch(() => {}));
  process.on('uncaughtException', fatal);
  try {
    const reclaim = startChunkReclaim({
      onError: (err) => gateway.logger.warn({ err: String(err) }, 'streamed-body memory reclaim is off; memory may peak higher during large transfers'),
    });
    const watcher = watchConfig(configPath, {
      initialText: loaded.text,
      onConfig: (config) => gateway.reload(prepare(config)),
      onError: (err) =>
        gateway.logger.error(
          { file: configPath, errors: err instanceof ConfigError ? err.format().split('\n') : [String(err)] },
          'config reload rejected; the running config stays in force',
        ),
    });
    // The file may have changed while the gateway started (no watcher saw it then).
    void watcher.reload();
    onHangup(() => void watcher.reload());
    await options.onStarted?.(gateway);
    await stop;
    onHangup(() => gateway.logger.info('SIGHUP ignored: the gateway is stopping'));
    watcher.close();
    await gateway.stop();
    reclaim.stop();
  } finally {
    process.off('uncaughtException', fatal);
  }
  return 0;
}

/**
 * What the process does with an error nothing caught (a bug, or a library throwing from a callback): the state it
 * leaves is unknown, so the gateway stops accepting (`stopAccepting`: the drain begins) and exits with 1 for its
 * supervisor to restart it. It first says why in its own log (a fatal line with the stack; the stack also goes to
 * stderr, as Node would print it) and writes out the access lines still gathered in memory, which Node's default
 * handling would lose; requests in flight get that long to finish.
 */
function exitOnFatalError(logger: Logger, stopAccepting: () => void): (err: unknown, origin: NodeJS.UncaughtExceptionOrigin) => void {
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
