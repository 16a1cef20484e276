// bin/zonegate.js in a checkout loads the sources from Node's compile cache, filled by bin/warm-compile-cache.js
// (or by an earlier run): a gateway started that way never loads the TypeScript stripper (~25 MiB it would keep). Run
// as a file, it passes node the flags of its first line. (Installed from npm it runs dist/: test/package/.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { fillCompileCache, STRIPPER_PROBE, ZONEGATE_BIN, zonegateEnv } from '../support/gateway-process.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const NODE = join(REPO, 'node_modules/.bin/node');


describe('bin/zonegate.js', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zonegate-compile-cache-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** `zonegate validate routes.yaml` (which loads the whole gateway) with its own cache directory. */
  async function validate(cacheDir: string): Promise<{ stdout: string; stderr: string }> {
    const env = { ...process.env, NODE_COMPILE_CACHE: cacheDir };
    return promisify(execFile)(NODE, ['--import', STRIPPER_PROBE, 'bin/zonegate.js', 'validate', 'routes.yaml'], { cwd: REPO, env });
  }

  it('strips types at run time while the cache is empty', async () => {
    const { stdout, stderr } = await validate(join(dir, 'empty'));
    assert.equal(stdout.trim(), 'ok');
    assert.match(stderr, /stripper loaded: true/);
  });

  it('runs with the environment and node flags of its first line when run as a file', async () => {
    const report = join(dir, 'flags.mjs');
    await writeFile(
      report,
      `process.on('exit', () => process.stderr.write('execArgv: ' + JSON.stringify(process.execArgv) + ' arenas: ' + process.env.MALLOC_ARENA_MAX + '\\n'));`,
    );
    const env = zonegateEnv({ NODE_OPTIONS: `--import="${report}"` });
    const { stdout, stderr } = await promisify(execFile)(ZONEGATE_BIN, ['validate', 'routes.yaml'], { cwd: REPO, env });
    assert.equal(stdout.trim(), 'ok');
    assert.match(stderr, /execArgv: \["--max-semi-space-size=16"\] arenas: 2/);
  });

  it('loads every module already stripped once the cache is filled', async () => {
    const cacheDir = join(dir, 'filled');
    await fillCompileCache({ ...process.env, NODE_COMPILE_CACHE: cacheDir });
    const { stdout, stderr } = await validate(cacheDir);
    assert.equal(stdout.trim(), 'ok');
    assert.match(stderr, /stripper loaded: false/);
  });
});
