// `npm run bench -- --workers [N|auto]`: zonegate with 1 worker, then with N, under the same load, each with cores
// of its own: the gateway's workers on N cores, the upstream and the load generator (autocannon worker threads) on
// others, so what is measured is the gateway, not its neighbours. The core layout is printed first; a machine
// with too few cores for it gets no scaling claim (unless --shared-cores, which measures anyway and says so).
//   npm run bench -- --workers [N|auto] [--duration 10] [--warmup 2] [--connections 100] [--shared-cores]
import autocannon, { type Result } from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { allowedCpus, pinProcess } from './cpus.ts';

const REPO = resolve(import.meta.dirname, '..');
const LOOPBACK = '127.0.0.1';
const START_TIMEOUT_MS = 20_000;

export interface CoreLayout {
  readonly gateway: readonly number[];
  readonly upstream: readonly number[];
  readonly generator: readonly number[];
}

/**
 * Cores for N workers: N for the gateway; the upstream (a trivial server) and the load generator need about a
 * quarter and a half of a core per gateway core to keep it busy. Undefined when `cpus` are too few.
 */
function coreLayout(cpus: readonly number[], workers: number): CoreLayout | undefined {
  const upstream = Math.max(1, Math.ceil(workers / 4));
  const generator = Math.max(1, Math.ceil(workers / 2));
  if (workers < 2 || cpus.length < workers + upstream + generator) return undefined;
  return {
    gateway: cpus.slice(0, workers),
    upstream: cpus.slice(workers, workers + upstream),
    generator: cpus.slice(workers + upstream, workers + upstream + generator),
  };
}

interface Options {
  readonly workers: number | 'auto';
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly sharedCores: boolean;
}

function parseOptions(argv: readonly string[]): Options | string {
  // `--workers` alone means auto
  const args = argv.flatMap((arg, i) => (arg === '--workers' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--')) ? ['--workers=auto'] : [arg]));
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        workers: { type: 'string' },
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '2' },
        connections: { type: 'string', default: '100' },
        'shared-cores': { type: 'boolean', default: false },
      },
    }));
  } catch (error) {
    return (error as Error).message;
  }
  const workers = values.workers === 'auto' ? 'auto' : Number(values.workers);
  if (workers !== 'auto' && (!Number.isInteger(workers) || workers < 2)) return `--workers expects auto or a whole number ≥ 2, got "${values.workers}"`;
  const [durationSeconds, warmupSeconds, connections] = [Number(values.duration), Number(values.warmup), Number(values.connections)];
  if (!(durationSeconds >= 1 && warmupSeconds >= 0 && Number.isInteger(connections) && connections >= 1)) return 'bad --duration, --warmup or --connections';
  return { workers, durationSeconds, warmupSeconds, connections, sharedCores: values['shared-cores'] };
}

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, LOOPBACK, () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
    server.once('error', fail);
  });
}

function spawnPinned(argv: readonly string[], cpus: readonly number[] | undefined, stdout: 'ignore' | number): ChildProcess {
  const command = cpus === undefined ? argv : ['taskset', '-c', cpus.join(','), ...argv];
  return spawn(command[0]!, command.slice(1), { cwd: REPO, stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, PATH: `${REPO}/node_modules/.bin:${process.env.PATH}` } });
}

async function waitFor(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  while (!(await check().catch(() => false))) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await once(child, 'exit');
}

function drive(url: string, connections: number, seconds: number, threads: number): Promise<Result> {
  return new Promise((done, fail) => {
    autocannon({ url: `${url}/bench/item`, connections, duration: seconds, ...(threads > 1 ? { workers: threads } : {}) }, (error, result) =>
      error ? fail(error) : done(result),
    );
  });
}

interface Measured {
  readonly workers: number;
  readonly cores: string;
  readonly result: Result;
}

async function measureGateway(dir: string, workers: number, cores: readonly number[] | undefined, upstreams: readonly number[], options: Options, threads: number): Promise<Measured> {
  const [listen, admin] = [await freePort(), await freePort()];
  const file = join(dir, `workers-${workers}.routes.yaml`);
  const config = {
    gateway: { listen: `${LOOPBACK}:${listen}`, admin: `${LOOPBACK}:${admin}`, zone: 'sh-a', workers },
    topology: { 'cn-east': { shanghai: ['sh-a'] } },
    discovery: { static: { bench: upstreams.map((port) => ({ address: `${LOOPBACK}:${port}`, zone: 'sh-a' })) } },
    routes: [{ name: 'bench', match: { prefix: '/' }, service: 'bench' }],
  };
  writeFileSync(file, JSON.stringify(config));
  // the access log goes to a file, as in the main benchmark: writing it is part of a request's cost
  const log = openSync(join(dir, `workers-${workers}.access.log`), 'w');
  const gateway = spawnPinned(['bin/zonegate.js', 'run', '--config', file], cores, log);
  closeSync(log);
  try {
    await waitFor(async () => (await fetch(`http://${LOOPBACK}:${admin}/readyz`)).status === 200, `zonegate with ${workers} workers`);
    const url = `http://${LOOPBACK}:${listen}`;
    if (options.warmupSeconds > 0) await drive(url, options.connections, options.warmupSeconds, threads);
    const result = await drive(url, options.connections, options.durationSeconds, threads);
    return { workers, cores: cores?.join(',') ?? 'any', result };
  } finally {
    await stop(gateway);
  }
}

function report(runs: readonly Measured[], claim: boolean): void {
  const base = runs[0]!.result.requests.average;
  console.log('\nworkers  cores        req/s    p50 ms  p99 ms  errors/non-2xx  ÷ 1 worker');
  for (const { workers, cores, result } of runs) {
    console.log(
      `${String(workers).padStart(7)}  ${cores.padEnd(10)} ${Math.round(result.requests.average).toString().padStart(8)}  ${String(result.latency.p50).padStart(6)}  ${String(result.latency.p99).padStart(6)}  ` +
        `${`${result.errors}/${result.non2xx}`.padStart(14)}  ${(result.requests.average / base).toFixed(2).padStart(10)}`,
    );
  }
  console.log('(latency from autocannon\'s 1 ms buckets)');
  if (!claim) console.log('cores were shared between the gateway, the upstream and the load generator: these numbers are no scaling claim');
}

/** Runs the workers benchmark; resolves with the exit code. */
export async function runWorkersBench(argv: readonly string[]): Promise<number> {
  const options = parseOptions(argv);
  if (typeof options === 'string') {
    console.error(`${options}\nusage: npm run bench -- --workers [N|auto] [--duration <s>] [--warmup <s>] [--connections <n>] [--shared-cores]`);
    return 2;
  }
  const cpus = allowedCpus();
  const cpuList = Array.isArray(cpus) ? cpus : [];
  // auto: as many workers as leave room for the upstream and the generator
  let workers = options.workers === 'auto' ? Math.max(2, Math.floor((cpuList.length * 4) / 7)) : options.workers;
  while (options.workers === 'auto' && workers > 2 && coreLayout(cpuList, workers) === undefined) workers -= 1;
  const layout = coreLayout(cpuList, workers);
  console.log(`zonegate workers benchmark: Node ${process.version}; ${Array.isArray(cpus) ? `${cpus.length} CPUs usable (${cpus.join(',')})` : `CPUs unknown (${cpus.reason})`}`);
  if (layout === undefined) {
    const needed = workers + Math.max(1, Math.ceil(workers / 4)) + Math.max(1, Math.ceil(workers / 2));
    console.log(
      `core layout: none. ${workers} workers need ${needed} cores of their own (${workers} gateway, ${Math.max(1, Math.ceil(workers / 4))} upstream, ` +
        `${Math.max(1, Math.ceil(workers / 2))} load generator); this machine offers ${cpuList.length}.`,
    );
    if (!options.sharedCores) {
      console.log('Too few cores to measure how zonegate scales with workers: nothing measured. (--shared-cores measures anyway, without a claim.)');
      return 0;
    }
  } else {
    console.log(`core layout: gateway ${layout.gateway.join(',')} · upstream ${layout.upstream.join(',')} · load generator ${layout.generator.join(',')}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'zonegate-bench-workers-'));
  const upstreamPorts = await Promise.all(Array.from({ length: layout?.upstream.length ?? 1 }, freePort));
  const upstreams = upstreamPorts.map((port, i) => spawnPinned(['node', 'bench/upstream.ts', String(port)], layout ? [layout.upstream[i]!] : undefined, 'ignore'));
  try {
    if (layout) pinProcess(process.pid, layout.generator);
    for (const port of upstreamPorts) await waitFor(async () => (await fetch(`http://${LOOPBACK}:${port}/`)).ok, 'the upstream');
    const threads = layout?.generator.length ?? 1;
    console.log(`${options.durationSeconds} s per run after a ${options.warmupSeconds} s warm-up, ${options.connections} connections, ${threads} generator thread(s)`);
    const one = await measureGateway(dir, 1, layout ? [layout.gateway[0]!] : undefined, upstreamPorts, options, threads);
    const many = await measureGateway(dir, workers, layout?.gateway, upstreamPorts, options, threads);
    report([one, many], layout !== undefined);
    return 0;
  } finally {
    await Promise.all(upstreams.map(stop));
    rmSync(dir, { recursive: true, force: true });
  }
}
