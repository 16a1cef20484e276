// The command line itself: what a mistyped command line answers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { refusedPort, singleRouteYaml } from './support/http.ts';

const REPO = join(import.meta.dirname, '..');

async function zonegate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['src/cli.ts', ...args], { cwd: REPO });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('zonegate command line', () => {
  for (const args of [['run', '--bogus'], ['explain', '--path']]) {
    it(`answers "${args.join(' ')}" with what is wrong and the usage, exit 2, no stack`, async () => {
      const { code, stderr } = await zonegate(...args);
      assert.equal(code, 2);
      const [first, second] = stderr.split('\n');
      assert.match(first!, args[1] === '--bogus' ? /^Unknown option '--bogus'$/ : /--path.*argument missing/);
      assert.match(second!, /^usage: zonegate <command>/);
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    });
  }
});

describe('zonegate run --workers', () => {
  for (const value of ['two', '0', '1.5']) {
    it(`refuses --workers ${value} with what it takes, exit 2`, async () => {
      const { code, stderr } = await zonegate('run', '--workers', value, '--config', 'routes.yaml');
      assert.equal(code, 2);
      assert.equal(stderr.split('\n')[0], `--workers takes a number of processes (1 or more) or auto, not "${value}"`);
    });
  }
});

describe('zonegate --version and --help', () => {
  it('prints the package version', async () => {
    const { version } = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-v']) assert.deepEqual(await zonegate(flag), { code: 0, stdout: `${version}\n`, stderr: '' });
  });

  it('lists every command the command line takes', async () => {
    const { code, stdout } = await zonegate('--help');
    assert.equal(code, 0);
    const source = await readFile(join(REPO, 'src/cli.ts'), 'utf8');
    const commands = [...source.matchAll(/^\s+case '([a-z]+)':/gm)].map((m) => m[1]!);
    assert.ok(commands.length >= 6, `found the commands of the switch: ${commands.join(', ')}`);
    for (const command of commands) assert.match(stdout, new RegExp(`^  zonegate ${command}\\b`, 'm'), command);
    for (const option of ['--config', '--help', '--version']) assert.ok(stdout.includes(option), option);
  });
});

describe('zonegate health', () => {
  let dir: string;
  let admin: Server;
  let status = 200;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'zonegate-health-'));
    admin = createServer((req, res) => res.writeHead(req.url === '/healthz' ? status : 404).end()).listen(0, '127.0.0.1');
    await once(admin, 'listening');
  });
  after(async () => {
    admin.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** `zonegate health` on a config whose admin listener is `address`. */
  async function health(address: string) {
    const file = join(dir, 'routes.yaml');
    await writeFile(file, singleRouteYaml('127.0.0.1:9', { gateway: { admin: address, listen: '127.0.0.1:0' } }));
    return zonegate('health', '--config', file);
  }

  it('exits 0 when the admin listener answers /healthz with 200', async () => {
    status = 200;
    const { code, stdout } = await health(`127.0.0.1:${(admin.address() as AddressInfo).port}`);
    assert.equal(code, 0);
    assert.match(stdout, /^ok: http:\/\/127\.0\.0\.1:\d+\/healthz$/m);
  });

  it('exits 1 with one line when it answers otherwise or not at all', async () => {
    status = 503;
    const unhealthy = await health(`127.0.0.1:${(admin.address() as AddressInfo).port}`);
    assert.equal(unhealthy.code, 1);
    assert.match(unhealthy.stderr, /^unhealthy: .* answered 503\n$/);
    const refused = await health(`127.0.0.1:${await refusedPort()}`);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^unhealthy: .* did not answer \(.*ECONNREFUSED.*\)\n$/);
  });
});
