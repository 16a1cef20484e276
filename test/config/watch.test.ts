import assert from 'node:assert/strict';
import { mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import { loadConfigFileWithText } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { watchConfig } from '../../src/config/watch.ts';
import type { ConfigWatcher } from '../../src/config/watch.ts';
import { MINIMAL_CONFIG, editConfig, makeTempDir } from './fixtures/config-files.ts';
import type { TempDir } from './fixtures/config-files.ts';

type WatchEvent = { kind: 'config'; config: Config } | { kind: 'error'; error: Error };

/** Buffers handler calls so a test can await them in order. */
class WatchEvents {
  readonly seen: WatchEvent[] = [];
  #unread: WatchEvent[] = [];
  #waiting: Array<(event: WatchEvent) => void> = [];

  push(event: WatchEvent): void {
    this.seen.push(event);
    const waiter = this.#waiting.shift();
    if (waiter) waiter(event);
    else this.#unread.push(event);
  }

  next(): Promise<WatchEvent> {
    const event = this.#unread.shift();
    return event ? Promise.resolve(event) : new Promise((resolve) => this.#waiting.push(resolve));
  }

  /** Skips errors (an editor's half-written file may be seen first) up to the next config. */
  async nextConfig(): Promise<{ config: Config; skippedErrors: number }> {
    for (let skippedErrors = 0; ; skippedErrors++) {
      const event = await this.next();
      if (event.kind === 'config') return { config: event.config, skippedErrors };
    }
  }

  count(kind: WatchEvent['kind']): number {
    return this.seen.filter((event) => event.kind === kind).length;
  }
}

const withZone = (zone: string): string => editConfig('  zone: sh-a', `  zone: ${zone}`);
const BROKEN = editConfig('  zone: sh-a', '  zone: sh-a\n  listen: nowhere');

describe('watchConfig', () => {
  let temp: TempDir;
  let path: string;
  let events: WatchEvents;
  let watcher: ConfigWatcher | undefined;

  beforeEach(async () => {
    temp = await makeTempDir();
    path = await temp.write('routes.yaml', MINIMAL_CONFIG);
    events = new WatchEvents();
  });
  afterEach(async () => {
    watcher?.close();
    await temp.remove();
  });

  async function startWatching(debounceMs: number, pollMs?: number): Promise<ConfigWatcher> {
    const { text } = await loadConfigFileWithText(path, {});
    watcher = watchConfig(path, {
      initialText: text,
      env: {},
      debounceMs,
      pollMs,
      onConfig: (config) => events.push({ kind: 'config', config }),
      onError: (error) => events.push({ kind: 'error', error }),
    });
    return watcher;
  }

  /** How editors save: write a sibling, then rename it over the file. */
  async function replaceFile(text: string): Promise<void> {
    const sibling = `${path}.tmp`;
    await writeFile(sibling, text);
    await rename(sibling, path);
  }

  // a missed file event fails by timeout rather than hanging the run
  it('picks up a change, reports a broken file without a config, then picks up the fix', { timeout: 3000 }, async () => {
    await startWatching(20);

    await replaceFile(withZone('sh-b'));
    const first = await events.next();
    assert.equal(first.kind, 'config');
    assert.equal(first.kind === 'config' && first.config.gateway.zone, 'sh-b');

    await replaceFile(BROKEN);
    const broken = await events.next();
    assert.equal(broken.kind, 'error');
    assert.ok(broken.kind === 'error' && broken.error instanceof ConfigError);
    assert.match(broken.error.message, /gateway\.listen: expected host:port/);

    // written in place this time: a half-written file read in between may add errors, never a config
    await writeFile(path, MINIMAL_CONFIG);
    const fixed = await events.nextConfig();
    assert.equal(fixed.config.gateway.zone, 'sh-a');
    assert.equal(events.count('config'), 2, 'no config was delivered for the broken file');
  });

  it('picks up a Kubernetes ConfigMap update, which swaps a symlink rather than touching routes.yaml', { timeout: 3000 }, async () => {
    // The kubelet's layout: routes.yaml → ..data/routes.yaml, ..data → ..<timestamp>/, swapped by renaming ..data_tmp.
    const mount = join(temp.dir, 'configmap');
    await mkdir(join(mount, '..v1'), { recursive: true });
    await writeFile(join(mount, '..v1', 'routes.yaml'), MINIMAL_CONFIG);
    await symlink('..v1', join(mount, '..data'));
    await symlink(join('..data', 'routes.yaml'), join(mount, 'routes.yaml'));
    path = join(mount, 'routes.yaml');
    await startWatching(20);

    await mkdir(join(mount, '..v2'));
    await writeFile(join(mount, '..v2', 'routes.yaml'), withZone('sh-b'));
    await symlink('..v2', join(mount, '..data_tmp'));
    await rename(join(mount, '..data_tmp'), join(mount, '..data'));
    const { config } = await events.nextConfig();
    assert.equal(config.gateway.zone, 'sh-b');
  });

  it('picks up an edit to the target of a symlinked routes.yaml in another directory', { timeout: 3000 }, async () => {
    await mkdir(join(temp.dir, 'real'));
    const target = join(temp.dir, 'real', 'routes.yaml');
    await writeFile(target, MINIMAL_CONFIG);
    await mkdir(join(temp.dir, 'etc'));
    path = join(temp.dir, 'etc', 'routes.yaml');
    await symlink(target, path);
    await startWatching(20, 50);

    await writeFile(target, withZone('sh-b'));
    const { config } = await events.nextConfig();
    assert.equal(config.gateway.zone, 'sh-b');
  });

  it('picks up a change after the directory holding routes.yaml was replaced', { timeout: 3000 }, async () => {
    const conf = join(temp.dir, 'conf');
    await mkdir(conf);
    path = join(conf, 'routes.yaml');
    await writeFile(path, MINIMAL_CONFIG);
    await startWatching(20, 50);

    await mkdir(`${conf}.new`);
    await writeFile(join(`${conf}.new`, 'routes.yaml'), withZone('sh-b'));
    await rename(conf, `${conf}.old`);
    await rename(`${conf}.new`, conf);
    const { config } = await events.nextConfig();
    assert.equal(config.gateway.zone, 'sh-b');
  });

  it('reload() delivers a changed file once and stays quiet while it is unchanged', async () => {
    // a debounce longer than the test keeps the file watcher out of it
    const watching = await startWatching(60_000);
    await writeFile(path, withZone('sh-b'));

    await watching.reload();
    assert.deepEqual(events.seen.map((e) => e.kind === 'config' && e.config.gateway.zone), ['sh-b']);

    await watching.reload();
    assert.equal(events.seen.length, 1);
  });

  it('reload() offers a config that could not be applied again, and an applied one only once', async () => {
    const { text } = await loadConfigFileWithText(path, {});
    const answers = [false, true];
    const offered: string[] = [];
    watcher = watchConfig(path, {
      initialText: text,
      env: {},
      debounceMs: 60_000,
      onConfig: async (config) => {
        offered.push(config.gateway.zone);
        return answers.shift();
      },
      onError: (error) => events.push({ kind: 'error', error }),
    });
    await writeFile(path, withZone('sh-b'));
    await watcher.reload(); // not applied (say, its Consul client could not be built)
    await watcher.reload(); // the same text: offered again, and applied
    await watcher.reload(); // now it is the running text
    assert.deepEqual(offered, ['sh-b', 'sh-b']);
    assert.equal(events.seen.length, 0);
  });

  it('reload() reports a broken or missing file and keeps the last good text', async () => {
    const watching = await startWatching(60_000);
    await writeFile(path, BROKEN);
    await watching.reload();
    await rm(path);
    await watching.reload();
    assert.deepEqual(
      events.seen.map((e) => e.kind === 'error' && e.error.message.includes(path)),
      [true, true],
    );

    // the original text is still the running one, so restoring it is not a change
    await writeFile(path, MINIMAL_CONFIG);
    await watching.reload();
    assert.equal(events.seen.length, 2);
  });

  it('calls nothing after close()', async () => {
    const watching = await startWatching(60_000);
    watching.close();
    await writeFile(path, withZone('sh-b'));
    await watching.reload();
    assert.equal(events.seen.length, 0);
  });
});
