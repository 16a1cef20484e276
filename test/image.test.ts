// The container image, built the way the Dockerfile builds it but without Docker (this machine has no daemon or
// registry): each stage in a directory of its own standing in for its filesystem, its COPY lines (the build context
// filtered by .dockerignore, or another stage's files), its RUN commands in order (npm from the local npm cache), then
// the last stage's ENTRYPOINT and CMD with its ENV, and its HEALTHCHECK against the running gateway. What this
// catches: a file the package needs but does not ship, a runtime import of a devDependency, a build step that fails,
// an entrypoint or health check that does not work. (Not replayed: the base image, the non-root user.)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { STRIPPER_PROBE, zonegateEnv } from './support/gateway-process.ts';
import { refusedPort, send, within } from './support/http.ts';
import { spawnGateway } from './support/package.ts';

const REPO = join(import.meta.dirname, '..');
const run = promisify(execFile);

interface Stage {
  readonly name: string | undefined;
  workdir: string;
  /** COPY and RUN, in order */
  readonly steps: { readonly instruction: 'COPY' | 'RUN'; readonly args: string }[];
  readonly env: Record<string, string>;
  entrypoint?: string[];
  cmd?: string[];
  healthcheck?: string[];
}

/** The Dockerfile's stages (continuation lines joined, comments dropped). */
async function readDockerfile(): Promise<Stage[]> {
  const lines = (await readFile(join(REPO, 'Dockerfile'), 'utf8'))
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .filter((line) => line.trim() !== '' && !line.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, instruction = '', args = ''] = /^(\w+)\s+(.*)$/.exec(line) ?? [];
    const stage = stages.at(-1);
    if (instruction === 'FROM') stages.push({ name: /\sAS\s+(\S+)/i.exec(args)?.[1], workdir: '/', steps: [], env: {} });
    else if (!stage) assert.fail(`${instruction} before FROM`);
    else if (instruction === 'WORKDIR') stage.workdir = args;
    else if (instruction === 'COPY' || instruction === 'RUN') stage.steps.push({ instruction, args });
    else if (instruction === 'ENV') for (const [, name, value] of args.matchAll(/(\w+)=(\S+)/g)) stage.env[name!] = value!;
    else if (instruction === 'ENTRYPOINT') stage.entrypoint = JSON.parse(args) as string[];
    else if (instruction === 'CMD') stage.cmd = JSON.parse(args) as string[];
    else if (instruction === 'HEALTHCHECK') stage.healthcheck = JSON.parse(args.slice(args.indexOf('CMD ') + 4)) as string[];
  }
  return stages;
}

/** The build context as `docker build` sends it: the repo minus what .dockerignore names (top-level patterns). */
async function contextEntries(): Promise<string[]> {
  const patterns = (await readFile(join(REPO, '.dockerignore'), 'utf8')).split('\n').filter((line) => line.trim() !== '');
  const ignored = patterns.map((pattern) => new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`));
  return (await readdir(REPO)).filter((entry) => !ignored.some((pattern) => pattern.test(entry)));
}

describe('the container image, built without Docker', () => {
  let stages: Stage[];
  let root: string;
  /** a stage's filesystem */
  const rootOf = (stage: Stage): string => join(root, String(stages.indexOf(stage)));
  /** a path inside the image, in the directory standing in for its stage */
  const inStage = (stage: Stage, path: string): string => (path.startsWith('/') ? join(rootOf(stage), path) : join(rootOf(stage), stage.workdir, path));
  const final = (): Stage => stages.at(-1)!;

  before(async () => {
    stages = await readDockerfile();
    root = await mkdtemp(join(tmpdir(), 'zonegate-image-'));
    for (const stage of stages) {
      await mkdir(inStage(stage, stage.workdir), { recursive: true });
      await mkdir(inStage(stage, '/tmp'), { recursive: true });
      for (const { instruction, args } of stage.steps) {
        if (instruction === 'COPY') await copy(stage, args);
        else await runCommands(stage, args);
      }
    }
  });
  after(() => rm(root, { recursive: true, force: true }));

  /** COPY into a directory: a file by its name, a directory's contents (the context's, filtered by .dockerignore). */
  async function copy(stage: Stage, args: string): Promise<void> {
    const from = /--from=(\S+)/.exec(args)?.[1];
    const sources = args.replace(/--from=\S+\s*/, '').split(/\s+/);
    const destination = inStage(stage, sources.pop()!);
    const fromStage = from === undefined ? undefined : stages.find((candidate) => candidate.name === from);
    if (from !== undefined) assert.ok(fromStage, `COPY --from=${from} names a stage`);
    for (const source of sources) {
      const path = fromStage ? inStage(fromStage, source) : join(REPO, source);
      if (!(await stat(path)).isDirectory()) {
        await cp(path, join(destination, basename(path)));
        continue;
      }
      const entries = !fromStage && source === '.' ? await contextEntries() : await readdir(path);
      for (const entry of entries) await cp(join(path, entry), join(destination, entry), { recursive: true });
    }
  }

  /** A RUN line's commands, each in the stage's directory; paths inside the image point into its stand-in. */
  async function runCommands(stage: Stage, args: string): Promise<void> {
    for (const raw of args.split('&&').map((command) => command.trim())) {
      if (raw.startsWith('npm cache clean')) continue; // it would empty this machine's npm cache
      const command = raw.replace(/(^|\s|=)(\/(?:src|package|tmp|app))(?=\/|\s|$)/g, (_, before: string, path: string) => `${before}${inStage(stage, path)}`);
      // npm --offline: from the npm cache this repo's own install filled, so the test needs no registry
      const offline = command.startsWith('npm ') ? `${command} --offline` : command;
      await run('sh', ['-c', offline], { cwd: inStage(stage, stage.workdir), env: zonegateEnv() });
    }
  }

  it('holds the package and its production dependencies only', async () => {
    const app = inStage(final(), final().workdir);
    const installed = await readdir(join(app, 'node_modules'));
    for (const dependency of ['undici', 'zod', 'yaml', 'pino']) assert.ok(installed.includes(dependency), dependency);
    for (const dev of ['typescript', 'autocannon', 'ws', 'node']) assert.equal(installed.includes(dev), false, `${dev} is not in the image`);
    const files = await readdir(app);
    for (const left of ['src', 'test', 'bench', 'tsconfig.json', 'Dockerfile']) assert.equal(files.includes(left), false, `${left} is not in the image`);
    for (const shipped of ['dist', 'bin', 'routes.yaml', 'routes.schema.json', 'LICENSE']) assert.ok(files.includes(shipped), shipped);
  });

  it('starts the gateway with its ENTRYPOINT and CMD, reports healthy to its HEALTHCHECK, serves and drains', async (t) => {
    const stage = final();
    const mapped = (parts: readonly string[]): string[] => parts.map((part) => (part.startsWith('/app/') ? inStage(stage, part) : part));
    const admin = `127.0.0.1:${await refusedPort()}`;
    // The image's Node 24 is the one on PATH; a test must not take the machine's ports.
    const env = zonegateEnv({ ...stage.env, ZONEGATE_LISTEN: '127.0.0.1:0', ZONEGATE_ADMIN: admin });
    const [entrypoint, ...entryArgs] = mapped(stage.entrypoint!);
    const gateway = spawnGateway(entrypoint!, [...entryArgs, ...mapped(stage.cmd!)], {
      cwd: inStage(stage, stage.workdir),
      env: { ...env, NODE_OPTIONS: `--import="${STRIPPER_PROBE}"` },
    });
    t.after(() => gateway.child.kill('SIGKILL'));
    const started = await gateway.started;
    // routes.yaml's static instances are not running here: the gateway itself answers.
    const reply = await send(`http://127.0.0.1:${started.listen.port}`, { path: '/api/order/7' });
    assert.equal(reply.status, 502);
    assert.equal(JSON.parse(reply.body.toString()).error, 'upstream_unavailable');

    const [check, ...checkArgs] = mapped(stage.healthcheck!);
    const { stdout } = await run(check!, checkArgs, { cwd: inStage(stage, stage.workdir), env });
    assert.equal(stdout, `ok: http://${admin}/healthz\n`);

    gateway.child.kill('SIGTERM');
    assert.deepEqual(await within(gateway.exited, 15_000, 'the gateway to drain and exit'), [0, null]);
    assert.match(gateway.stderr(), /stripper loaded: false/, 'the image runs the built JavaScript');
  });
});
