// zonegate's npm package for tests: packed from this checkout (`npm pack` runs prepack, which builds dist/) and
// installed from the local npm cache without a network. The cache holds the dependencies' tarballs (this repo's own
// `npm ci` put them there) but not their registry metadata, which `npm install <tarball>` would ask for to resolve
// versions; so the installing project gets a lockfile made from this repo's, as `npm install` online would write it,
// and `npm ci --offline` installs from it.
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { promisify } from 'node:util';
import { isStartedLine, zonegateEnv, type StartedLine } from './gateway-process.ts';
import { pollUntil } from './http.ts';

const REPO = join(import.meta.dirname, '../..');
const run = promisify(execFile);

export interface PackedZonegate {
  /** absolute path of the .tgz */
  readonly tarball: string;
  /** every path in it (`package/dist/cli.js`, …) */
  readonly files: readonly string[];
}

/** `npm pack` into `dir`. */
export async function packZonegate(dir: string): Promise<PackedZonegate> {
  await run('npm', ['pack', '--pack-destination', dir, '--silent'], { cwd: REPO, env: zonegateEnv() });
  const [name] = (await readdir(dir)).filter((file) => file.endsWith('.tgz'));
  assert.ok(name, 'npm pack wrote a tarball');
  const tarball = join(dir, name);
  const files = (await run('tar', ['-tzf', tarball])).stdout.trim().split('\n');
  return { tarball, files };
}

interface LockEntry {
  dev?: boolean;
  devOptional?: boolean;
  [field: string]: unknown;
}

/**
 * The lockfile `npm install <tarball>` writes in an empty project `app` (`file:` spec relative to it): zonegate
 * from the tarball, and the production part of this repo's tree.
 */
async function lockfileFor(tarballSpec: string): Promise<{ manifest: object; lockfile: object }> {
  const lock = JSON.parse(await readFile(join(REPO, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const self = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as Record<string, unknown>;
  const manifest = { name: 'uses-zonegate', version: '1.0.0', private: true, dependencies: { zonegate: tarballSpec } };
  const production = Object.entries(lock.packages).filter(([path, entry]) => path.startsWith('node_modules/') && !entry.dev && !entry.devOptional);
  const zonegate = { version: self.version, resolved: tarballSpec, license: self.license, dependencies: self.dependencies, bin: self.bin, engines: self.engines };
  const packages = { '': manifest, 'node_modules/zonegate': zonegate, ...Object.fromEntries(production) };
  return { manifest, lockfile: { name: manifest.name, version: manifest.version, lockfileVersion: 3, requires: true, packages } };
}

/** Installs the packed tarball into the empty directory `app`, offline; resolves with the package's directory. */
export async function installZonegate(app: string, tarball: string, env: NodeJS.ProcessEnv = zonegateEnv()): Promise<string> {
  const { manifest, lockfile } = await lockfileFor(`file:${basename(tarball)}`);
  await writeFile(join(app, basename(tarball)), await readFile(tarball));
  await writeFile(join(app, 'package.json'), JSON.stringify(manifest, null, 2));
  await writeFile(join(app, 'package-lock.json'), JSON.stringify(lockfile, null, 2));
  await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app, env });
  return join(app, 'node_modules/zonegate');
}

export interface SpawnedGateway {
  readonly child: ChildProcess;
  /** the `zonegate started` line, once written */
  readonly started: Promise<StartedLine>;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  stderr(): string;
}

/** Starts `zonegate run …` as `file` (a bin, a launcher) and watches stdout for its start line. */
export function spawnGateway(file: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): SpawnedGateway {
  const child = spawn(file, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const startLine = (): StartedLine | undefined =>
    stdout.split('\n').flatMap((line) => (line.startsWith('{') ? [JSON.parse(line) as Record<string, unknown>] : [])).find(isStartedLine);
  const started = Promise.race([
    pollUntil(startLine, 15_000, 'the gateway start line'),
    exited.then(([code]) => Promise.reject(new Error(`zonegate exited (${code}) before it started:\n${stderr}`))),
  ]);
  return { child, started, exited, stderr: () => stderr };
}
