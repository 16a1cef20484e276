// The container image, built the way the Dockerfile builds it but without Docker (this machine has no daemon or
// registry): its COPY sources into a fresh directory, its `npm ci` from the local npm cache, then its ENTRYPOINT and
// CMD with its ENV. What this catches: a file the image needs but does not copy, a runtime import of a
// devDependency, a compile cache the build does not fill, an entrypoint that does not start. (Not replayed:
// .dockerignore, the non-root user and chown.) The compose file is
// checked for what it promises the host: the published ports reach the gateway's listeners.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { cp, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { isStartedLine, STRIPPER_PROBE, zonegateEnv } from './support/gateway-process.ts';
import { pollUntil, send, within } from './support/http.ts';

const REPO = fileURLToPath(new URL('../', import.meta.url));
const APP = '/app';

interface Dockerfile {
  readonly copies: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  /** the build's commands, in order: `npm ci …` and `node …` (file ownership and npm's cache are left out) */
  readonly builds: readonly string[];
  readonly entrypoint: readonly string[];
  readonly cmd: readonly string[];
}

/** The instructions this test replays, from the Dockerfile (continuation lines joined). */
async function readDockerfile(): Promise<Dockerfile> {
  const lines = (await readFile(join(REPO, 'Dockerfile'), 'utf8'))
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));
  const argumentsOf = (instruction: string): string[] =>
    lines.filter((line) => line.startsWith(`${instruction} `)).map((line) => line.slice(instruction.length + 1).trim());
  const env: Record<string, string> = {};
  for (const assignments of argumentsOf('ENV')) {
    for (const [, name, value] of assignments.matchAll(/(\w+)=(\S+)/g)) env[name!] = value!;
  }
  const copies = argumentsOf('COPY').flatMap((args) => args.split(/\s+/).slice(0, -1));
  const builds = argumentsOf('RUN')
    .flatMap((run) => run.split('&&').map((command) => command.trim()))
    .filter((command) => command.startsWith('npm ci') || command.startsWith('node '));
  assert.ok(builds.some((command) => command.startsWith('npm ci')), 'the Dockerfile installs with npm ci');
  return {
    copies,
    env,
    builds,
    entrypoint: JSON.parse(argumentsOf('ENTRYPOINT')[0]!) as string[],
    cmd: JSON.parse(argumentsOf('CMD')[0]!) as string[],
  };
}

/** A path inside the image, in the directory standing in for it. */
function inImage(root: string, path: string): string {
  return path.startsWith(`${APP}/`) ? join(root, path.slice(APP.length + 1)) : path;
}

describe('the container image, built without Docker', () => {
  let dockerfile: Dockerfile;
  let root: string;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    dockerfile = await readDockerfile();
    root = await mkdtemp(join(tmpdir(), 'zonegate-image-'));
    for (const source of dockerfile.copies) await cp(join(REPO, source), join(root, source), { recursive: true });
    const imageEnv = Object.fromEntries(Object.entries(dockerfile.env).map(([name, value]) => [name, inImage(root, value)]));
    // The image's Node 24 is the one on PATH; a test must not take the machine's ports.
    env = zonegateEnv({ ...imageEnv, ZONEGATE_LISTEN: '127.0.0.1:0', ZONEGATE_ADMIN: '127.0.0.1:0' });
    for (const command of dockerfile.builds) {
      const [program, ...args] = command.split(/\s+/);
      // npm --offline: from the npm cache this repo's own install filled, so the test needs no registry.
      await promisify(execFile)(program!, program === 'npm' ? [...args, '--offline'] : args, { cwd: root, env });
    }
  });
  after(() => rm(root, { recursive: true, force: true }));

  it('installs production dependencies only', async () => {
    const installed = await readdir(join(root, 'node_modules'));
    for (const dev of ['typescript', 'autocannon', 'ws', 'node']) assert.equal(installed.includes(dev), false, `${dev} is not in the image`);
  });

  it('starts the gateway on routes.yaml with its ENTRYPOINT and CMD, every module from the compile cache, and serves', async (t) => {
    const [entrypoint, ...entryArgs] = dockerfile.entrypoint.map((part) => inImage(root, part));
    const child = spawn(entrypoint!, [...entryArgs, ...dockerfile.cmd.map((part) => inImage(root, part))], {
      cwd: root,
      env: { ...env, NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --import="${STRIPPER_PROBE}"` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = once(child, 'exit');
    t.after(async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    });
    let stdout = '';
    child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const started = await pollUntil(
      () => stdout.split('\n').flatMap((text) => (text.startsWith('{') ? [JSON.parse(text) as Record<string, unknown>] : [])).find(isStartedLine),
      15_000,
      'the gateway start line',
    );
    // routes.yaml's static instances are not running here: the gateway itself answers.
    const reply = await send(`http://127.0.0.1:${started.listen.port}`, { path: '/api/order/7' });
    assert.equal(reply.status, 502);
    assert.equal(JSON.parse(reply.body.toString()).error, 'upstream_unavailable');
    child.kill('SIGTERM');
    assert.deepEqual(await within(exited, 15_000, 'the gateway to drain and exit'), [0, null]);
    assert.match(stderr, /stripper loaded: false/, 'every module came from the compile cache built into the image');
  });
});

describe('docker-compose.yml', () => {
  it('publishes the ports the gateway listens on in the container it shares', async () => {
    const compose = parseYaml(await readFile(join(REPO, 'docker-compose.yml'), 'utf8')) as {
      services: Record<string, { ports?: string[]; network_mode?: string; environment?: Record<string, string>; command?: string[] }>;
    };
    const zonegate = compose.services.zonegate!;
    const host = zonegate.network_mode?.replace(/^service:/, '') ?? 'zonegate';
    const published = (compose.services[host]!.ports ?? []).map((mapping) => mapping.split(':')[1]!.split(/\s/)[0]);
    const listen = (await readDockerfile()).env.ZONEGATE_LISTEN!;
    assert.ok(published.includes(listen.split(':').at(-1)!), `the proxy port of ${listen}`);
    assert.ok(published.includes(zonegate.environment!.ZONEGATE_ADMIN!.split(':').at(-1)!), 'the admin port');
    assert.ok(zonegate.environment!.ZONEGATE_ADMIN_TOKEN, 'an admin listener outside loopback needs a token');
    assert.deepEqual(zonegate.command?.slice(0, 2), ['demo', '--consul']);
  });

  it('publishes the admin listener on loopback only, with a token that has no default', async () => {
    const text = await readFile(join(REPO, 'docker-compose.yml'), 'utf8');
    const compose = parseYaml(text) as { services: Record<string, { ports?: string[]; environment?: Record<string, string> }> };
    const admin = Object.values(compose.services).flatMap((service) => service.ports ?? []).filter((mapping) => mapping.endsWith(':9901'));
    assert.deepEqual(admin, ['127.0.0.1:9901:9901']);
    assert.match(compose.services.zonegate!.environment!.ZONEGATE_ADMIN_TOKEN!, /^\$\{ZONEGATE_ADMIN_TOKEN:\?[^}]+\}$/, 'required from the environment');
  });
});
