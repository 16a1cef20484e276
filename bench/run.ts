// What zonegate costs per request, measured on the same machine against a bare undici forwarder and against that
// forwarder plus the per-request work DESIGN.md requires (the contract forwarder). All three forward to the same
// upstream and take the same load; see bench/README.md.
//   node bench/run.ts [--scenario plain|sticky|ratelimit|tls|all] [--duration 10] [--warmup 2]
//                     [--connections 50] [--rounds 2] [--rate <req/s>]
// With --rate the load is held at that many requests per second (over all connections): compare p99, not req/s.
import autocannon, { type Instance, type RequestSpec } from 'autocannon';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, createReadStream, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { createHistogram, performance } from 'node:perf_hooks';
import { delimiter, dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { stringify as toYaml } from 'yaml';
import { allowedCpus, pinProcess } from './cpus.ts';

const REPO = resolve(import.meta.dirname, '..');
const LOOPBACK = '127.0.0.1';
const SCENARIO_NAMES = ['plain', 'sticky', 'ratelimit'] as const;
type ScenarioName = (typeof SCENARIO_NAMES)[number];
/** `unlimited`: zonegate with the scenario's route but no rate limit (and no Redis), beside the limited one */
type TargetName = 'bare' | 'http-proxy-3' | 'contract' | 'unlimited' | 'zonegate';

const CHILD_START_TIMEOUT_MS = 10_000;
const CHILD_STOP_GRACE_MS = 3_000;
const STDERR_TAIL_CHARS = 16_384;
const BENCH_PATH = '/bench/item';
const REDIS_URL = 'redis://127.0.0.1:6379';
// Enough distinct keys that sticky hashing and per-key buckets see real variety, few enough that
// autocannon can prebuild every request (it rebuilds requests per send only when they are dynamic).
const USER_IDS = Array.from({ length: 256 }, (_, index) => `user-${index}`);

// ── options ────────────────────────────────────────────────────────────────────────────────────

interface BenchOptions {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly rounds: number;
  readonly scenarios: readonly ScenarioName[];
  /** requests per second held over all connections (added latency at a fixed rate), or undefined for flat out */
  readonly rate: number | undefined;
  /** the tls scenario (bench/tls.ts): one zonegate over plain HTTP, HTTPS and HTTP/2 */
  readonly tls: boolean;
}

const USAGE = `usage: node bench/run.ts [--scenario plain|sticky|ratelimit|tls|all] [--duration <s>] [--warmup <s>]
                         [--connections <n>] [--rounds <n>] [--rate <req/s>]`;

const OPTION_SPEC = {
  scenario: { type: 'string', default: 'plain' },
  duration: { type: 'string', default: '10' },
  warmup: { type: 'string', default: '2' },
  connections: { type: 'string', default: '50' },
  rounds: { type: 'string', default: '2' },
  rate: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

function parseOptions(argv: readonly string[]): BenchOptions {
  let values: ReturnType<typeof parseArgs<{ options: typeof OPTION_SPEC }>>['values'];
  try {
    ({ values } = parseArgs({ args: [...argv], strict: true, options: OPTION_SPEC }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const scenario = values.scenario;
  if (scenario !== 'all' && scenario !== 'tls' && !isScenarioName(scenario)) throw new UsageError(`unknown scenario "${scenario}"`);
  return {
    durationSeconds: numberOption('duration', values.duration, { min: 1 }),
    warmupSeconds: numberOption('warmup', values.warmup, { min: 0 }),
    connections: numberOption('connections', values.connections, { min: 1, integer: true }),
    rounds: numberOption('rounds', values.rounds, { min: 1, integer: true }),
    scenarios: scenario === 'all' ? SCENARIO_NAMES : scenario === 'tls' ? [] : [scenario as ScenarioName],
    rate: values.rate === undefined ? undefined : numberOption('rate', values.rate, { min: 1, integer: true }),
    tls: scenario === 'all' || scenario === 'tls',
  };
}

function isScenarioName(text: string): text is ScenarioName {
  return (SCENARIO_NAMES as readonly string[]).includes(text);
}

function numberOption(name: string, text: string, rule: { min: number; integer?: boolean }): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < rule.min || (rule.integer === true && !Number.isInteger(value))) {
    throw new UsageError(`--${name} expects ${rule.integer === true ? 'an integer' : 'a number'} ≥ ${rule.min}, got "${text}"`);
  }
  return value;
}

class UsageError extends Error {}

// ── CPU pinning ────────────────────────────────────────────────────────────────────────────────

interface CpuLayout {
  /** where the proxy under test runs (bare forwarder or gateway) */
  readonly proxyCpu?: number;
  /** where the upstream and this process (the load generator) run */
  readonly loadCpu?: number;
  readonly description: string;
}

/** Gives the proxy under test a core of its own, so the load generator never competes with it. */
function pinCpus(): CpuLayout {
  const cpus = allowedCpus();
  if (!Array.isArray(cpus)) return { description: `no CPU pinning (${cpus.reason})` };
  const [proxyCpu, loadCpu] = cpus;
  if (proxyCpu === undefined || loadCpu === undefined) return { description: 'no CPU pinning (fewer than 2 CPUs)' };
  pinProcess(process.pid, [loadCpu]);
  return {
    proxyCpu,
    loadCpu,
    description: `proxy under test on CPU ${proxyCpu}; upstream and load generator on CPU ${loadCpu}`,
  };
}

// ── child processes ────────────────────────────────────────────────────────────────────────────

const running = new Set<Child>();

const clockTicksPerSecond = ((): number | undefined => {
  if (process.platform !== 'linux') return undefined;
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || undefined;
  } catch {
    return 100; // the kernel's USER_HZ on every mainstream architecture
  }
})();

/** A helper process that is always stopped when the benchmark ends, however it ends. */
class Child {
  readonly name: string;
  readonly #process: ChildProcess;
  readonly #exited: Promise<void>;
  #exitReason: string | undefined;
  #stderrTail = '';

  /** `argv`: a node script and its arguments, or (`executable: true`) a file that runs itself, like `zonegate` */
  constructor(
    name: string,
    argv: readonly string[],
    options: { cpu: number | undefined; stdout: 'pipe' | number; executable?: boolean },
  ) {
    this.name = name;
    const command = options.executable === true ? argv : [process.execPath, ...argv];
    const [file, ...args] = options.cpu === undefined ? command : ['taskset', '-c', String(options.cpu), ...command];
    // A file that runs itself finds node on PATH: this same Node first.
    const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
    this.#process = spawn(file!, args, { cwd: REPO, env, stdio: ['ignore', options.stdout, 'pipe'] });
    this.#process.stderr?.setEncoding('utf8').on('data', (text: string) => {
      this.#stderrTail = (this.#stderrTail + text).slice(-STDERR_TAIL_CHARS);
    });
    this.#exited = new Promise((resolveExit) => {
      this.#process.once('error', (error) => {
        this.#exitReason ??= `could not start: ${error.message}`;
        resolveExit();
      });
      this.#process.once('exit', (code, signal) => {
        this.#exitReason ??= signal === null ? `exited with code ${code}` : `was killed by ${signal}`;
        resolveExit();
      });
    });
    running.add(this);
    void this.#exited.then(() => running.delete(this));
  }

  /** CPU time (user + system, all threads) used so far; undefined where /proc is not available */
  cpuSeconds(): number | undefined {
    const pid = this.#process.pid;
    if (pid === undefined || clockTicksPerSecond === undefined) return undefined;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      // Fields after the parenthesised command name, which may itself hold spaces: state is the
      // first, utime and stime (fields 14 and 15 of proc(5)) the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / clockTicksPerSecond;
    } catch {
      return undefined;
    }
  }

  /** undefined while the process runs */
  get exitReason(): string | undefined {
    return this.#exitReason;
  }

  stderrTail(lines = 20): string {
    return this.#stderrTail.trimEnd().split('\n').slice(-lines).join('\n');
  }

  /** Resolves once the process prints `ready` on stdout. */
  waitForReadyLine(): Promise<void> {
    const stdout = this.#process.stdout;
    if (!stdout) return Promise.reject(new Error(`${this.name}: stdout is not a pipe`));
    return new Promise((resolveReady, rejectReady) => {
      let seen = '';
      const timer = setTimeout(
        () => finish(new Error(`${this.name} did not print "ready" within ${CHILD_START_TIMEOUT_MS / 1000} s`)),
        CHILD_START_TIMEOUT_MS,
      );
      const onData = (text: string): void => {
        seen += text;
        if (/^ready\b/m.test(seen)) finish();
      };
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        stdout.off('data', onData);
        stdout.resume(); // keep draining so a chatty child never blocks on a full pipe
        if (error) rejectReady(error);
        else resolveReady();
      };
      stdout.setEncoding('utf8').on('data', onData);
      void this.#exited.then(() => finish(new Error(`${this.name} ${this.#exitReason}\n${this.stderrTail()}`)));
    });
  }

  /** Polls `url` until it answers 200; returns why it never did, or undefined when ready. */
  async waitForHttpReady(url: string, timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#exitReason !== undefined) return `${this.name} ${this.#exitReason}`;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(500) });
        await response.arrayBuffer();
        if (response.status === 200) return undefined;
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
    return `${this.name} did not answer 200 on ${url} within ${timeoutMs / 1000} s`;
  }

  async stop(): Promise<void> {
    if (this.#exitReason !== undefined) return;
    this.#process.kill('SIGTERM');
    await Promise.race([this.#exited, sleep(CHILD_STOP_GRACE_MS)]);
    this.killNow();
    await this.#exited;
  }

  /** For the synchronous `exit` hook: no waiting possible there. */
  killNow(): void {
    if (this.#exitReason === undefined) this.#process.kill('SIGKILL');
  }
}

async function startLineReadyChild(name: string, nodeArgs: readonly string[], cpu: number | undefined): Promise<Child> {
  const child = new Child(name, nodeArgs, { cpu, stdout: 'pipe' });
  await child.waitForReadyLine();
  return child;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, rejectPort) => {
    const server = createServer();
    server.once('error', rejectPort);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : rejectPort(new Error('no port'))));
    });
  });
}

function canConnect(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolveProbe) => {
    const socket = connect({ host: hostname, port: Number(port), timeout: 500 });
    const settle = (reachable: boolean): void => {
      socket.destroy();
      resolveProbe(reachable);
    };
    socket.once('connect', () => settle(true)).once('error', () => settle(false)).once('timeout', () => settle(false));
  });
}

// ── scenarios ──────────────────────────────────────────────────────────────────────────────────

type Topology = Readonly<Record<string, Readonly<Record<string, readonly string[]>>>>;

interface Scenario {
  readonly name: ScenarioName;
  readonly summary: string;
  readonly topology: Topology;
  /** zones of the upstream instances; the first one is also the bare forwarder's upstream */
  readonly instanceZones: readonly string[];
  /** route keys beyond name/match/service */
  readonly routePolicy: Readonly<Record<string, unknown>>;
  readonly redis?: { readonly url: string; readonly keyPrefix: string };
  /** also run zonegate without `routePolicy` and `redis`, in the same run, to see what the policy itself costs */
  readonly compareUnlimited?: boolean;
  /** what every connection sends, in turn */
  readonly requests: readonly RequestSpec[];
}

const SINGLE_ZONE: Topology = { 'cn-east': { shanghai: ['sh-a'] } };
const THREE_ZONES: Topology = { 'cn-east': { shanghai: ['sh-a', 'sh-b'] }, 'cn-north': { beijing: ['bj-a'] } };

function requestsPerUser(extraHeaders: Readonly<Record<string, string>>): RequestSpec[] {
  return USER_IDS.map((userId) => ({ method: 'GET', path: BENCH_PATH, headers: { 'x-user-id': userId, ...extraHeaders } }));
}

function scenario(name: ScenarioName): Scenario {
  switch (name) {
    case 'plain':
      return {
        name,
        summary: 'one instance, no sticky key, no rate limit',
        topology: SINGLE_ZONE,
        instanceZones: ['sh-a'],
        routePolicy: {},
        requests: [{ method: 'GET', path: BENCH_PATH }],
      };
    case 'sticky':
      return {
        name,
        summary: `sticky on X-User-ID (${USER_IDS.length} users), X-Region-ID: sh-a, instances in sh-a, sh-b, bj-a`,
        topology: THREE_ZONES,
        instanceZones: ['sh-a', 'sh-b', 'bj-a'],
        routePolicy: { sticky: { header: 'X-User-ID' } },
        requests: requestsPerUser({ 'x-region-id': 'sh-a' }),
      };
    case 'ratelimit':
      return {
        name,
        summary: 'Redis token bucket on one hot key (every request X-User-ID: hot), limit never reached; zonegate without the limit beside it',
        topology: SINGLE_ZONE,
        instanceZones: ['sh-a'],
        routePolicy: { rateLimit: { key: 'header:X-User-ID', rate: '1000000/s', burst: 1_000_000 } },
        // A fresh prefix per run, so buckets left by an earlier run never change this one.
        redis: { url: REDIS_URL, keyPrefix: `zonegate-bench-${process.pid}-${Date.now()}` },
        compareUnlimited: true,
        requests: [{ method: 'GET', path: BENCH_PATH, headers: { 'x-user-id': 'hot' } }],
      };
  }
}

/** The one upstream process listens on this many ports, enough for the scenario with the most instances. */
const UPSTREAM_PORT_COUNT = Math.max(...SCENARIO_NAMES.map((name) => scenario(name).instanceZones.length));

function gatewayConfig(current: Scenario, ports: { listen: number; admin: number; upstreams: readonly number[] }): unknown {
  return {
    gateway: { listen: `${LOOPBACK}:${ports.listen}`, admin: `${LOOPBACK}:${ports.admin}`, zone: 'sh-a' },
    topology: current.topology,
    discovery: {
      static: {
        bench: current.instanceZones.map((zone, index) => ({ address: `${LOOPBACK}:${ports.upstreams[index]}`, zone })),
      },
    },
    ...(current.redis ? { redis: current.redis } : {}),
    routes: [{ name: 'bench', match: { prefix: '/' }, service: 'bench', ...current.routePolicy }],
  };
}

// ── load ───────────────────────────────────────────────────────────────────────────────────────

/** One measured run as the load generator saw it. */
interface RunStats {
  readonly requestsPerSecond: number;
  /** responses the load generator counted; requests still in flight when it stops are not among them */
  readonly responses: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** connection errors and timeouts */
  readonly errors: number;
  readonly non2xx: number;
}

/** What the run cost the proxy under test: unlike req/s, this holds even when the load side is the limit. */
interface ProxyCost {
  /** share of one core the proxy kept busy */
  readonly busyShare?: number;
  readonly cpuMicrosPerResponse?: number;
  /** share of the machine's CPU time the hypervisor took away during the run (a virtual machine's "steal") */
  readonly stealShare?: number | undefined;
}

type RoundStats = RunStats & ProxyCost;

let activeLoad: Instance | undefined;

function drive(url: string, requests: readonly RequestSpec[], connections: number, seconds: number, rate?: number): Promise<RunStats> {
  // autocannon's own latency histogram has 1 ms buckets, too coarse for a proxy on loopback.
  const latencyMicros = createHistogram();
  return new Promise((resolveRun, rejectRun) => {
    activeLoad = autocannon({ url, connections, duration: seconds, requests, overallRate: rate }, (error, result) => {
      activeLoad = undefined;
      if (error) {
        rejectRun(error);
        return;
      }
      resolveRun({
        requestsPerSecond: result.requests.average,
        responses: result.requests.total,
        p50Ms: latencyMicros.count === 0 ? 0 : latencyMicros.percentile(50) / 1000,
        p99Ms: latencyMicros.count === 0 ? 0 : latencyMicros.percentile(99) / 1000,
        errors: result.errors,
        non2xx: result.non2xx,
      });
    });
    activeLoad.on('response', (_client, _status, _bytes, responseTimeMs) => {
      latencyMicros.record(Math.max(1, Math.round(responseTimeMs * 1000)));
    });
  });
}

/** A 2xx for the scenario's first request, or why not. */
async function preflight(baseUrl: string, request: RequestSpec): Promise<string | undefined> {
  try {
    const response = await fetch(new URL(request.path ?? '/', baseUrl), {
      headers: request.headers,
      signal: AbortSignal.timeout(5_000),
    });
    const body = await response.text();
    return response.ok ? undefined : `GET ${request.path} answered ${response.status}: ${body.slice(0, 300)}`;
  } catch (error) {
    return `GET ${request.path} failed: ${(error as Error).message}`;
  }
}

/** The machine's CPU time so far, and how much of it the hypervisor gave to others (steal), from /proc/stat. */
function machineTicks(): { total: number; steal: number } | undefined {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal (guest time is already inside user)
    return { total: fields.slice(0, 8).reduce((sum, value) => sum + value, 0), steal: fields[7] ?? 0 };
  } catch {
    return undefined;
  }
}

async function measure(target: Target, requests: readonly RequestSpec[], options: BenchOptions): Promise<RoundStats> {
  const cpuBefore = target.child.cpuSeconds();
  const machineBefore = machineTicks();
  const startedAt = performance.now();
  const stats = await drive(target.url, requests, options.connections, options.durationSeconds, options.rate);
  const elapsedSeconds = (performance.now() - startedAt) / 1000;
  const cpuAfter = target.child.cpuSeconds();
  const machineAfter = machineTicks();
  const stealShare =
    machineBefore && machineAfter && machineAfter.total > machineBefore.total
      ? (machineAfter.steal - machineBefore.steal) / (machineAfter.total - machineBefore.total)
      : undefined;
  if (cpuBefore === undefined || cpuAfter === undefined || stats.responses === 0) return { ...stats, stealShare };
  const cpuSeconds = cpuAfter - cpuBefore;
  return { ...stats, stealShare, busyShare: cpuSeconds / elapsedSeconds, cpuMicrosPerResponse: (cpuSeconds * 1e6) / stats.responses };
}

async function countLines(file: string): Promise<number> {
  let lines = 0;
  for await (const chunk of createReadStream(file)) {
    const bytes = chunk as Buffer;
    for (let at = bytes.indexOf(0x0a); at !== -1; at = bytes.indexOf(0x0a, at + 1)) lines += 1;
  }
  return lines;
}

// ── report ─────────────────────────────────────────────────────────────────────────────────────

interface Measured {
  readonly scenario: ScenarioName;
  readonly target: TargetName;
  /** the round with the most requests per second */
  readonly best: RoundStats;
  /** every measured round, in order: round i of each target ran back to back with round i of the others */
  readonly rounds: readonly RoundStats[];
  /** over every measured round, so a noisy round cannot hide failures */
  readonly errors: number;
  readonly non2xx: number;
}

/** why is printed when it happens; the table only marks the row */
interface Skipped {
  readonly scenario: ScenarioName;
  readonly target: TargetName;
}

type Outcome = Measured | Skipped;

function summarize(scenarioName: ScenarioName, target: TargetName, rounds: readonly RoundStats[]): Measured {
  const best = rounds.reduce((winner, round) => (round.requestsPerSecond > winner.requestsPerSecond ? round : winner));
  return {
    scenario: scenarioName,
    target,
    best,
    rounds,
    errors: rounds.reduce((sum, round) => sum + round.errors, 0),
    non2xx: rounds.reduce((sum, round) => sum + round.non2xx, 0),
  };
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

function formatMs(value: number): string {
  return value.toFixed(value < 100 ? 2 : 0);
}

function formatRatio(numerator: number | undefined, denominator: number | undefined): string {
  return numerator === undefined || denominator === undefined ? '-' : (numerator / denominator).toFixed(2);
}

function reportRows(outcomes: readonly Outcome[]): string[][] {
  return outcomes.map((outcome) => {
    if (!('best' in outcome)) {
      return [outcome.scenario, outcome.target, 'skipped', ...Array<string>(TABLE_HEADER.length - 3).fill('-')];
    }
    const { best } = outcome;
    const reference = (target: TargetName): Measured | undefined =>
      outcomes.find((other): other is Measured => other.scenario === outcome.scenario && other.target === target && 'best' in other);
    const bare = outcome.target === 'bare' ? undefined : reference('bare');
    const contract = outcome.target === 'zonegate' ? reference('contract') : undefined;
    const httpProxy = outcome.target === 'zonegate' || outcome.target === 'unlimited' ? reference('http-proxy-3') : undefined;
    const unlimited = outcome.target === 'zonegate' ? reference('unlimited') : undefined;
    return [
      outcome.scenario,
      outcome.target,
      integer.format(best.requestsPerSecond),
      formatMs(best.p50Ms),
      formatMs(best.p99Ms),
      `${outcome.errors}/${outcome.non2xx}`,
      best.busyShare === undefined ? '-' : `${Math.round(best.busyShare * 100)}%`,
      best.cpuMicrosPerResponse === undefined ? '-' : best.cpuMicrosPerResponse.toFixed(0),
      bare ? formatRatio(best.requestsPerSecond, bare.best.requestsPerSecond) : '',
      bare ? formatRatio(best.cpuMicrosPerResponse, bare.best.cpuMicrosPerResponse) : '',
      httpProxy ? formatRatio(best.requestsPerSecond, httpProxy.best.requestsPerSecond) : '',
      contract ? formatRatio(best.requestsPerSecond, contract.best.requestsPerSecond) : '',
      unlimited ? formatRatio(best.requestsPerSecond, unlimited.best.requestsPerSecond) : '',
      unlimited ? formatRatio(best.cpuMicrosPerResponse, unlimited.best.cpuMicrosPerResponse) : '',
    ];
  });
}

/** Below this share of its core, the proxy was waiting for load, not working flat out. */
const SATURATED_PERCENT = 90;

function loadBoundNotes(outcomes: readonly Outcome[]): string[] {
  return outcomes.flatMap((outcome) => {
    const busyShare = 'best' in outcome ? outcome.best.busyShare : undefined;
    // Compared as printed, so a row showing 90% never gets the note.
    const busyPercent = busyShare === undefined ? undefined : Math.round(busyShare * 100);
    if (busyPercent === undefined || busyPercent >= SATURATED_PERCENT) return [];
    return [
      `note: ${outcome.target} (${outcome.scenario}) kept its core only ${busyPercent}% busy, so something else ` +
        '(the load core, other work on the machine) capped its req/s; CPU µs/req still compares fairly',
    ];
  });
}

function formatTable(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  // The first two columns are names; the rest are numbers and read best right-aligned.
  const line = (cells: readonly string[]): string =>
    cells.map((cell, column) => (column < 2 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((width) => '-'.repeat(width))), ...rows.map(line)].join('\n');
}

const TABLE_HEADER = [
  'scenario', 'target', 'req/s', 'p50 ms', 'p99 ms', 'errors/non-2xx', 'proxy CPU', 'CPU µs/req', 'req/s ÷ bare', 'CPU/req ÷ bare',
  'req/s ÷ http-proxy-3', 'req/s ÷ contract', 'req/s ÷ unlimited', 'CPU/req ÷ unlimited',
];

function printReport(title: string, outcomes: readonly Outcome[]): void {
  console.log(`\n${title}\n${formatTable(TABLE_HEADER, reportRows(outcomes))}`);
  for (const note of [...pairedRatios(outcomes), ...loadBoundNotes(outcomes), ...stealNotes(outcomes)]) console.log(note);
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/**
 * zonegate against each reference round by round: round i of every target ran within the same minute, so on a
 * machine whose speed drifts (a shared VM) the median of these ratios is steadier than a ratio of two best runs.
 */
function pairedRatios(outcomes: readonly Outcome[]): string[] {
  const measured = outcomes.filter((outcome): outcome is Measured => 'best' in outcome);
  return measured.flatMap((gateway) => (gateway.target === 'zonegate' ? pairedRatiosOf(gateway, measured) : []));
}

function pairedRatiosOf(gateway: Measured, measured: readonly Measured[]): string[] {
  if (gateway.rounds.length < 2) return [];
  const parts = measured.flatMap((reference) => {
    if (reference.scenario !== gateway.scenario || reference === gateway || reference.target === 'unlimited') return [];
    const pairs = Math.min(reference.rounds.length, gateway.rounds.length);
    const rps: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const ours = gateway.rounds[i]!;
      const theirs = reference.rounds[i]!;
      rps.push(ours.requestsPerSecond / theirs.requestsPerSecond);
      if (ours.cpuMicrosPerResponse !== undefined && theirs.cpuMicrosPerResponse !== undefined) cpu.push(ours.cpuMicrosPerResponse / theirs.cpuMicrosPerResponse);
    }
    return [`÷ ${reference.target} ${median(rps).toFixed(2)}${cpu.length === pairs ? ` (CPU/req ${median(cpu).toFixed(2)})` : ''}`];
  });
  return [`${gateway.scenario}: zonegate round by round, median of ${gateway.rounds.length} (req/s): ${parts.join(', ')}`];
}

/** Above this share of stolen CPU, a run measured the host's other tenants as much as the proxy. */
const NOTABLE_STEAL_PERCENT = 5;

function stealNotes(outcomes: readonly Outcome[]): string[] {
  return outcomes.flatMap((outcome) => {
    const steal = 'best' in outcome ? outcome.best.stealShare : undefined;
    const stealPercent = steal === undefined ? undefined : Math.round(steal * 100);
    if (stealPercent === undefined || stealPercent < NOTABLE_STEAL_PERCENT) return [];
    return [
      `note: during the best run of ${outcome.target} (${outcome.scenario}) the hypervisor took ${stealPercent}% of the ` +
        "machine's CPU time (steal): absolute numbers are inflated and ratios are less reliable",
    ];
  });
}

// ── the run ────────────────────────────────────────────────────────────────────────────────────

interface Target {
  readonly name: TargetName;
  readonly url: string;
  readonly child: Child;
}

interface Bench {
  readonly options: BenchOptions;
  readonly cpus: CpuLayout;
  readonly workDir: string;
  readonly bare: Target;
  /** http-proxy-3 with a keep-alive agent (bench/http-proxy-forwarder.ts) */
  readonly httpProxy: Target;
  /** the bare forwarder plus the per-request work DESIGN.md requires (bench/contract-forwarder.ts) */
  readonly contract: Target;
  readonly upstreamPorts: readonly number[];
}

async function runScenario(bench: Bench, name: ScenarioName): Promise<Outcome[]> {
  const { options } = bench;
  const current = scenario(name);
  console.log(`\n[${name}] ${current.summary}`);

  for (const reference of [bench.bare, bench.httpProxy, bench.contract]) {
    const problem = await preflight(reference.url, current.requests[0]!);
    if (problem) throw new Error(`the ${reference.name} forwarder fails the ${name} preflight: ${problem}`);
  }

  const targets: Target[] = [bench.bare, bench.httpProxy, bench.contract];
  const outcomes: Outcome[] = [];
  const gateways: GatewayStart[] = [];
  for (const unlimited of current.compareUnlimited === true ? [true, false] : [false]) {
    const gateway = await startGateway(bench, current, unlimited);
    gateways.push(gateway);
    const target: TargetName = unlimited ? 'unlimited' : 'zonegate';
    if ('skipReason' in gateway) {
      console.log(`  ${target} skipped: ${gateway.skipReason}`);
      outcomes.push({ scenario: name, target });
    } else {
      targets.push(gateway);
    }
  }
  const gateway = gateways.at(-1)!;

  const rounds = new Map<TargetName, RoundStats[]>(targets.map((target) => [target.name, []]));
  let gatewayResponses = 1; // the preflight
  try {
    // Alternating targets spreads slow drifts of the machine (thermal, neighbours) over both.
    for (let round = 1; round <= options.rounds; round += 1) {
      for (const target of targets) {
        if (options.warmupSeconds > 0) {
          const warmup = await drive(target.url, current.requests, options.connections, options.warmupSeconds, options.rate);
          if (target.name === 'zonegate') gatewayResponses += warmup.responses;
        }
        const result = await measure(target, current.requests, options);
        if (target.name === 'zonegate') gatewayResponses += result.responses;
        rounds.get(target.name)!.push(result);
        console.log(
          `  ${target.name.padEnd(12)} round ${round}/${options.rounds}: ${integer.format(result.requestsPerSecond)} req/s, ` +
            `p50 ${formatMs(result.p50Ms)} ms, p99 ${formatMs(result.p99Ms)} ms, ${result.errors} errors, ${result.non2xx} non-2xx` +
            (result.cpuMicrosPerResponse === undefined ? '' : `, ${result.cpuMicrosPerResponse.toFixed(0)} CPU µs/req`) +
            (result.stealShare === undefined ? '' : `, steal ${(result.stealShare * 100).toFixed(0)}%`),
        );
      }
    }
  } finally {
    for (const started of gateways) if (!('skipReason' in started)) await started.child.stop();
  }
  if (!('skipReason' in gateway)) {
    const logLines = await countLines(gateway.accessLog);
    // Should be close: only requests in flight when each run stopped are logged but not counted.
    console.log(
      `  zonegate stdout: ${integer.format(logLines)} lines for ${integer.format(gatewayResponses)} counted responses (${gateway.accessLog})`,
    );
  }
  const measured = targets.map((target) => summarize(name, target.name, rounds.get(target.name)!));
  return [...measured, ...outcomes];
}

/** A proxy under test whose stdout (its access log: writing it is part of what a request costs) goes to `logFile`. */
function startLoggingChild(
  name: string,
  argv: readonly string[],
  options: { cpu: number | undefined; logFile: string; executable?: boolean },
): Child {
  const logFd = openSync(options.logFile, 'w');
  try {
    return new Child(name, argv, { cpu: options.cpu, stdout: logFd, executable: options.executable });
  } finally {
    closeSync(logFd);
  }
}

async function startContractForwarder(dir: string, upstreamPort: number, cpu: number | undefined): Promise<Target> {
  const port = await freePort();
  const logFile = join(dir, 'contract.access.log');
  const child = startLoggingChild('contract forwarder', ['bench/contract-forwarder.ts', String(port), String(upstreamPort)], { cpu, logFile });
  const url = `http://${LOOPBACK}:${port}`;
  const notReady = await child.waitForHttpReady(`${url}/`, CHILD_START_TIMEOUT_MS);
  if (notReady !== undefined) throw new Error(`${notReady}\n${child.stderrTail()}`);
  return { name: 'contract', url, child };
}

type GatewayStart = (Target & { readonly accessLog: string }) | { readonly skipReason: string };

/** zonegate with the scenario's config, or (`unlimited`) with its route but neither `routePolicy` nor `redis`. */
async function startGateway(bench: Bench, scenarioConfig: Scenario, unlimited: boolean): Promise<GatewayStart> {
  const current = unlimited ? { ...scenarioConfig, routePolicy: {}, redis: undefined } : scenarioConfig;
  const label = unlimited ? `${current.name}.unlimited` : current.name;
  const targetName: TargetName = unlimited ? 'unlimited' : 'zonegate';
  if (current.redis && !(await canConnect(current.redis.url))) {
    console.log(`  note: nothing listens on ${current.redis.url}; the gateway's redis.onError policy decides what is measured`);
  }
  const [listen, admin] = [await freePort(), await freePort()];
  const configFile = join(bench.workDir, `${label}.routes.yaml`);
  writeFileSync(configFile, toYaml(gatewayConfig(current, { listen, admin, upstreams: bench.upstreamPorts })));
  const accessLog = join(bench.workDir, `${label}.access.log`);
  // Run as installed: the file itself, so the environment and node flags on its first line apply.
  const child = startLoggingChild(targetName, ['bin/zonegate.js', 'run', '--config', configFile], {
    cpu: bench.cpus.proxyCpu,
    logFile: accessLog,
    executable: true,
  });
  const notReady = await child.waitForHttpReady(`http://${LOOPBACK}:${admin}/readyz`, CHILD_START_TIMEOUT_MS);
  const url = `http://${LOOPBACK}:${listen}`;
  const problem = notReady ?? (await preflight(url, current.requests[0]!));
  if (problem === undefined) return { name: targetName, child, url, accessLog };
  const stderr = child.stderrTail();
  await child.stop();
  keepWorkDir = true;
  const details = stderr ? `\n  stderr (tail):\n${stderr.replace(/^/gm, '    | ')}` : '';
  return { skipReason: `${problem}${details}\n  config: ${configFile}` };
}

function timeBudgetSeconds(options: BenchOptions): number {
  const perTarget = options.rounds * (options.warmupSeconds + options.durationSeconds + 2);
  // at most five targets (bare, http-proxy-3, contract, unlimited, zonegate) and two gateways to start and stop
  const perScenario = 5 * perTarget + 2 * (CHILD_START_TIMEOUT_MS / 1000) + 3 * (CHILD_STOP_GRACE_MS / 1000);
  return Math.ceil(30 + 1.5 * (options.scenarios.length + (options.tls ? 1 : 0)) * perScenario);
}

let shuttingDown = false;
let keepWorkDir = false;
let workDir: string | undefined;

/** Files are kept after a failure or a skipped gateway (for the logs), dropped after success or an interrupt. */
async function shutDown(exitCode: number, message?: string, interrupted = false): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  if (message) console.error(message);
  activeLoad?.stop();
  await Promise.all([...running].map((child) => child.stop()));
  if (workDir !== undefined) {
    if (!interrupted && (keepWorkDir || exitCode !== 0)) console.error(`files kept in ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
  process.exit(exitCode);
}

async function main(): Promise<void> {
  // 1 worker against N, a benchmark of its own (bench/workers.ts)
  if (process.argv.slice(2).some((arg) => arg === '--workers' || arg.startsWith('--workers='))) {
    await shutDown(await (await import('./workers.ts')).runWorkersBench(process.argv.slice(2)));
    return;
  }
  const options = parseOptions(process.argv.slice(2));
  const budget = timeBudgetSeconds(options);
  setTimeout(() => void shutDown(1, `the benchmark ran past its ${budget} s time budget`), budget * 1000).unref();

  const cpus = pinCpus();
  workDir = mkdtempSync(join(tmpdir(), 'zonegate-bench-'));
  console.log(`zonegate benchmark: Node ${process.version}; ${cpus.description}`);
  console.log(
    `${options.durationSeconds} s per run after a ${options.warmupSeconds} s warm-up, ${options.connections} connections, ` +
      `best of ${options.rounds} alternating runs per target`,
  );

  const upstreamPorts = await Promise.all(Array.from({ length: UPSTREAM_PORT_COUNT }, freePort));
  await startLineReadyChild('upstream', ['bench/upstream.ts', ...upstreamPorts.map(String)], cpus.loadCpu);
  const barePort = await freePort();
  const bareForwarder = await startLineReadyChild(
    'bare forwarder',
    ['bench/bare-forwarder.ts', String(barePort), String(upstreamPorts[0])],
    cpus.proxyCpu,
  );
  const bare: Target = { name: 'bare', url: `http://${LOOPBACK}:${barePort}`, child: bareForwarder };
  const httpProxyPort = await freePort();
  const httpProxy: Target = {
    name: 'http-proxy-3',
    url: `http://${LOOPBACK}:${httpProxyPort}`,
    child: await startLineReadyChild('http-proxy-3', ['bench/http-proxy-forwarder.ts', String(httpProxyPort), String(upstreamPorts[0])], cpus.proxyCpu),
  };
  const contract = await startContractForwarder(workDir, upstreamPorts[0]!, cpus.proxyCpu);
  const bench: Bench = { options, cpus, workDir, bare, httpProxy, contract, upstreamPorts };

  const outcomes: Outcome[] = [];
  for (const name of options.scenarios) {
    const scenarioOutcomes = await runScenario(bench, name);
    outcomes.push(...scenarioOutcomes);
    printReport(`${name}: best of ${options.rounds}`, scenarioOutcomes);
  }
  if (options.scenarios.length > 1) printReport('all scenarios', outcomes);
  if (options.tls) await runTls(bench);
}

/** The tls scenario: zonegate alone (the forwarders speak plain HTTP only), on the proxy CPU like the others. */
async function runTls(bench: Bench): Promise<void> {
  const { runTlsScenario } = await import('./tls.ts');
  await runTlsScenario({
    ...bench.options,
    workDir: bench.workDir,
    upstreamPort: bench.upstreamPorts[0]!,
    freePort,
    async startZonegate(configFile, readyUrl) {
      const child = startLoggingChild('zonegate', ['bin/zonegate.js', 'run', '--config', configFile], {
        cpu: bench.cpus.proxyCpu,
        logFile: join(bench.workDir, 'tls.access.log'),
        executable: true,
      });
      const notReady = await child.waitForHttpReady(readyUrl, CHILD_START_TIMEOUT_MS);
      if (notReady !== undefined) throw new Error(`${notReady}\n${child.stderrTail()}`);
      return child;
    },
  });
}

process.once('SIGINT', () => void shutDown(130, 'interrupted', true));
process.once('SIGTERM', () => void shutDown(143, 'terminated', true));
process.on('exit', () => {
  for (const child of running) child.killNow();
});

main().then(
  () => shutDown(0),
  (error: unknown) => {
    if (error instanceof UsageError) {
      console.error(`${error.message}\n${USAGE}`);
      return shutDown(2);
    }
    return shutDown(1, String((error as Error).stack ?? error));
  },
);
