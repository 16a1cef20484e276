// `zonegate run`: load routes.yaml, start the gateway, reload on change or SIGHUP, drain on SIGTERM/SIGINT.
import cluster from 'node:cluster';
import { ConfigError } from './config/errors.ts';
import { loadConfigFileWithText } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { watchConfig } from './config/watch.ts';
import { Gateway } from './gateway.ts';
import { startChunkReclaim } from './memory.ts';
import { resolveWorkers, workersUnsupported, type WorkersSetting } from './workers/count.ts';
import { exitOnFatalError, stopOnSignal } from './lifecycle.ts';

export interface RunOptions {
  /** adjusts every loaded config before it is applied (the demo turns routing headers on) */
  readonly prepare?: (config: Config) => Config;
  readonly onStarted?: (gateway: Gateway) => void | Promise<void>;
  /** resolves when the gateway should stop; default: SIGTERM or SIGINT */
  readonly stopSignal?: Promise<unknown>;
  /** `--workers`: overrides `gateway.workers` */
  readonly workers?: WorkersSetting;
}


export async function runGateway(configPath: string, options: RunOptions = {}): Promise<number> {
  // a worker of `--workers`: its config comes from the primary, validated there
  if (cluster.isWorker) return (await import('./workers/worker.ts')).runWorker();
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
  const workers = resolveWorkers(options.workers ?? loaded.config.gateway.workers);
  if (workers > 1) {
    const unsupported = workersUnsupported(workers);
    if (unsupported !== undefined) {
      console.error(unsupported);
      return 1;
    }
    return (await import('./workers/primary.ts')).runPrimary(configPath, loaded, workers);
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
