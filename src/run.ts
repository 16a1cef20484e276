// `zonegate run`: load routes.yaml, start the gateway, reload on change or SIGHUP, drain on SIGTERM/SIGINT.
import { once } from 'node:events';
import { ConfigError } from './config/errors.ts';
import { loadConfigFileWithText } from './config/load.ts';
import type { Config } from './config/schema.ts';
import { watchConfig } from './config/watch.ts';
import { Gateway } from './gateway.ts';
import { startChunkReclaim } from './memory.ts';

export interface RunOptions {
  /** adjusts every loaded config before it is applied (the demo turns routing headers on) */
  readonly prepare?: (config: Config) => Config;
  readonly onStarted?: (gateway: Gateway) => void | Promise<void>;
  /** resolves when the gateway should stop; default: SIGTERM or SIGINT */
  readonly stopSignal?: Promise<unknown>;
}

function stopOnSignal(): Promise<unknown> {
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
  return 0;
}
