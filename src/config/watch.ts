// Hot reload: on a file change or SIGHUP, load routes.yaml again and hand over the new config only when it is
// valid and its text differs from the config already running. A bad file leaves the running config alone.
import { unwatchFile, watch, watchFile, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Config } from './schema.ts';
import type { Env } from './interpolate.ts';
import { loadConfigText, readConfigText } from './load.ts';

export interface ConfigWatchOptions {
  /** the text of the config now running (from `loadConfigFileWithText`): only a different text is reloaded */
  readonly initialText: string;
  /**
   * Called with each new valid config, one at a time. If it throws, the error goes to onError; if it throws or
   * answers false (the config could not be applied, its user said why), the same text is tried again next time.
   */
  onConfig(config: Config): boolean | void | Promise<boolean | void>;
  /** a bad or unreadable file (usually a ConfigError), or a watcher failure; the caller keeps its config */
  onError(error: Error): void;
  readonly env?: Env;
  /** editors save in several steps (truncate, write, rename); wait for the events to settle */
  readonly debounceMs?: number;
  /** how often the file is also looked at by path (see POLL_MS) */
  readonly pollMs?: number;
}

export interface ConfigWatcher {
  /** Loads the file now (what SIGHUP calls); same rules as a file change. Never rejects: errors go to onError. */
  reload(): Promise<void>;
  close(): void;
}

const DEFAULT_DEBOUNCE_MS = 100;
/**
 * The directory watch misses a change made elsewhere: in the target of a symlinked routes.yaml, or in a directory
 * that replaced the watched one (`mv conf.new conf`). A look at the file by its path this often catches those.
 */
const POLL_MS = 2000;

export function watchConfig(path: string, options: ConfigWatchOptions): ConfigWatcher {
  const fileName = basename(path);
  let runningText = options.initialText;
  let closed = false;
  let debounce: NodeJS.Timeout | undefined;
  // one load at a time, in order, so an older read can never replace a newer config
  let queue = Promise.resolve();

  const report = (error: unknown): void => {
    if (!closed) options.onError(error instanceof Error ? error : new Error(String(error)));
  };

  const loadIfChanged = async (): Promise<void> => {
    try {
      const text = await readConfigText(path);
      if (closed || text === runningText) return;
      if ((await options.onConfig(loadConfigText(text, path, options.env))) !== false) runningText = text;
    } catch (error) {
      report(error);
    }
  };

  const reload = (): Promise<void> => {
    queue = queue.then(loadIfChanged);
    return queue;
  };

  // The directory, not the file: an editor that saves by rename leaves a watch on the old inode deaf. Names
  // starting with `..` are how a Kubernetes ConfigMap volume updates: it swaps the `..data` symlink that
  // routes.yaml points through, and routes.yaml itself never changes.
  const changed = (): void => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void reload(), options.debounceMs ?? DEFAULT_DEBOUNCE_MS);
  };
  const watcher = watch(dirname(path), (_event, name) => {
    if (name === null || name === fileName || name.startsWith('..')) changed();
  });
  watcher.on('error', report);
  const polled = (now: Stats, before: Stats): void => {
    if (now.mtimeMs !== before.mtimeMs || now.ino !== before.ino || now.size !== before.size) changed();
  };
  watchFile(path, { interval: options.pollMs ?? POLL_MS, persistent: false }, polled);

  return {
    reload,
    close() {
      closed = true;
      clearTimeout(debounce);
      watcher.close();
      unwatchFile(path, polled);
    },
  };
}
