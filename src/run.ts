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
  const reloadOnHangup = (): void => void watcher.reload();
  process.on('SIGHUP', reloadOnHangup);
  await options.onStarted?.(gateway);
  await stop;
  process.off('SIGHUP', reloadOnHangup);
  watcher.close();
  await gateway.stop();
  reclaim.stop();
  return 0;
}
