// Runs `zonegate run` as its own process, for what only a separate process can show: its memory, its signals.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ConfigInput } from '../../src/config/schema.ts';
import { pollUntil, within } from './http.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** the pinned Node 24 (a symlink to the binary itself) */
const NODE = join(REPO, 'node_modules/.bin/node');
/** `zonegate` as installed: run as a file, so its shebang's node flags apply (env and node exec in turn: one pid) */
export const ZONEGATE_BIN = join(REPO, 'bin/zonegate.js');

/** A module to preload into a zonegate process: on exit it prints `stripper loaded: true|false` on stderr. */
export const STRIPPER_PROBE = join(REPO, 'test/support/stripper-probe.mjs');

/** An environment in which `ZONEGATE_BIN` finds the pinned Node 24 first on PATH, plus `extra`. */
export function zonegateEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PATH: `${dirname(NODE)}${delimiter}${process.env.PATH ?? ''}`, ...extra };
}
const START_TIMEOUT_MS = 15_000;

export interface GatewayProcess {
  readonly pid: number;
  readonly url: string;
  readonly adminUrl: string;
  /** every stdout line the gateway wrote so far, parsed */
  readonly lines: Record<string, unknown>[];
  /** the process's peak resident set size so far (`VmHWM`), in bytes */
  peakRssBytes(): Promise<number>;
  /** SIGTERM, then waits for the exit; resolves with the exit code (or the signal that ended it) */
  stop(): Promise<number | NodeJS.Signals>;
}

export interface StartedLine {
  msg: 'zonegate started';
  listen: { port: number };
  admin: { port: number };
}

export function isStartedLine(line: Record<string, unknown>): line is Record<string, unknown> & StartedLine {
  return line.msg === 'zonegate started';
}

/** A log line as an object; anything that is not JSON is kept as `{ text }`. */
function parseLine(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    if (typeof value === 'object' && value !== null) return value as Record<string, unknown>;
  } catch {
    // not a log line: keep the text
  }
  return { text };
}

let compileCacheFilled: Promise<unknown> | undefined;

/** Fills the compile cache (bin/warm-compile-cache.js), so a gateway started from the sources loads no stripper. */
export function fillCompileCache(env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  return promisify(execFile)(NODE, ['bin/warm-compile-cache.js'], { cwd: REPO, env });
}

/** A `zonegate run` process as launched, before it is known to have started. */
export interface LaunchedGateway {
  readonly child: ChildProcess;
  /** the routes.yaml it runs (rewrite it to test reloads) */
  readonly file: string;
  /** every stdout line the gateway wrote so far, parsed */
  readonly lines: Record<string, unknown>[];
  /** resolves with the first line (already written or future) that satisfies `predicate`; rejects if the process exits first */
  waitForLine<T extends Record<string, unknown>>(predicate: (line: Record<string, unknown>) => line is T, ms: number, what: string): Promise<T>;
  waitForLine(predicate: (line: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>>;
  /** resolves with the exit code, or the signal that ended the process */
  readonly exited: Promise<number | NodeJS.Signals>;
  readonly stderr: () => string;
  /** SIGTERM (unless it already exited), then waits for the exit; resolves with the exit code or signal */
  stop(): Promise<number | NodeJS.Signals>;
}

export interface LaunchOptions {
  /** a module for the process to import first (a test-only hook) */
  readonly preload?: string;
}

/**
 * Writes `config` (listeners forced onto free loopback ports) to a temporary routes.yaml and starts
 * `zonegate run --config <file>` from a filled compile cache.
 */
export async function launchGatewayProcess(config: ConfigInput, options: LaunchOptions = {}): Promise<LaunchedGateway> {
  await (compileCacheFilled ??= fillCompileCache());
  const dir = await mkdtemp(join(tmpdir(), 'zonegate-process-'));
  const file = join(dir, 'routes.yaml');
  await writeFile(file, JSON.stringify({ ...config, gateway: { ...config.gateway, listen: '127.0.0.1:0', admin: '127.0.0.1:0' } }));
  const preload = options.preload === undefined ? {} : { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import="${options.preload}"` };
  const child = spawn(ZONEGATE_BIN, ['run', '--config', file], { cwd: REPO, env: zonegateEnv(preload), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal!)));
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<{ predicate: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = parseLine(text);
    lines.push(line);
    for (const waiter of waiters) {
      if (!waiter.predicate(line)) continue;
      waiters.delete(waiter);
      waiter.resolve(line);
    }
  });
  const waitForLine = (predicate: (line: Record<string, unknown>) => boolean, ms: number, what: string): Promise<Record<string, unknown>> => {
    const found = lines.find(predicate);
    if (found) return Promise.resolve(found);
    const { promise, resolve } = Promise.withResolvers<Record<string, unknown>>();
    waiters.add({ predicate, resolve });
    const exitedFirst = exited.then((end) => {
      throw new Error(`gateway exited (${end}) before ${what}:\n${stderr}`);
    });
    return within(Promise.race([promise, exitedFirst]), ms, what);
  };
  const stop = async (): Promise<number | NodeJS.Signals> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const end = await within(exited, 10_000, 'the gateway process to exit after SIGTERM');
    await rm(dir, { recursive: true, force: true });
    return end;
  };
  return { child, file, lines, waitForLine: waitForLine as LaunchedGateway['waitForLine'], exited, stderr: () => stderr, stop };
}

/** Launches a gateway process (launchGatewayProcess) and resolves once its admin `/readyz` answers 200. */
export async function startGatewayProcess(config: ConfigInput): Promise<GatewayProcess> {
  const launched = await launchGatewayProcess(config);
  try {
    const started = await launched.waitForLine(isStartedLine, START_TIMEOUT_MS, 'the gateway start line');
    const adminUrl = `http://127.0.0.1:${started.admin.port}`;
    await pollUntil(() => isReady(adminUrl), START_TIMEOUT_MS, '/readyz = 200');
    const pid = launched.child.pid!;
    return {
      pid,
      url: `http://127.0.0.1:${started.listen.port}`,
      adminUrl,
      lines: launched.lines,
      peakRssBytes: () => peakRssBytes(pid),
      stop: launched.stop,
    };
  } catch (err) {
    await launched.stop();
    throw err;
  }
}

export async function isReady(adminUrl: string): Promise<true | undefined> {
  const response = await fetch(`${adminUrl}/readyz`).catch(() => undefined);
  return response?.status === 200 ? true : undefined;
}

async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
