// Runs `zonegate run` as its own process, for what only a separate process can show: its memory.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { ConfigInput } from '../../src/config/schema.ts';
import { pollUntil, within } from './http.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/** the pinned Node 24 (a symlink to the binary itself, so the child's pid is the gateway's) */
const NODE = join(REPO, 'node_modules/.bin/node');
const START_TIMEOUT_MS = 15_000;

export interface GatewayProcess {
  readonly pid: number;
  readonly url: string;
  readonly adminUrl: string;
  /** every stdout line the gateway wrote so far, parsed */
  readonly lines: Record<string, unknown>[];
  /** the process's peak resident set size so far (`VmHWM`), in bytes */
  peakRssBytes(): Promise<number>;
  /** SIGTERM, then waits for the exit; resolves with the exit code */
  stop(): Promise<number | null>;
}

interface StartedLine {
  msg: 'zonegate started';
  listen: { port: number };
  admin: { port: number };
}

function isStartedLine(line: Record<string, unknown>): line is Record<string, unknown> & StartedLine {
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

/** Collects the child's JSON stdout lines and resolves with the start line (listen and admin ports). */
function readStartLine(child: ChildProcess, lines: Record<string, unknown>[], stderr: () => string): Promise<StartedLine> {
  const { promise, resolve, reject } = Promise.withResolvers<StartedLine>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    const line = parseLine(text);
    lines.push(line);
    if (isStartedLine(line)) resolve(line);
  });
  child.once('exit', (code) => reject(new Error(`gateway exited with ${code} before it started:\n${stderr()}`)));
  return promise;
}

let compileCacheFilled: Promise<unknown> | undefined;

/** What `npm install` does: fills the compile cache, so the gateway starts as it does when deployed. */
export function fillCompileCache(env: NodeJS.ProcessEnv = process.env): Promise<unknown> {
  return promisify(execFile)(NODE, ['bin/warm-compile-cache.js'], { cwd: REPO, env });
}

/**
 * Writes `config` (listeners forced onto free loopback ports) to a temporary routes.yaml, starts
 * `zonegate run --config <file>` from a filled compile cache, and resolves once its admin `/readyz` answers 200.
 */
export async function startGatewayProcess(config: ConfigInput): Promise<GatewayProcess> {
  await (compileCacheFilled ??= fillCompileCache());
  const dir = await mkdtemp(join(tmpdir(), 'zonegate-process-'));
  const file = join(dir, 'routes.yaml');
  await writeFile(file, JSON.stringify({ ...config, gateway: { ...config.gateway, listen: '127.0.0.1:0', admin: '127.0.0.1:0' } }));
  const child = spawn(NODE, ['bin/zonegate.js', 'run', '--config', file], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = once(child, 'exit') as Promise<[number | null]>;
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const lines: Record<string, unknown>[] = [];
  const stop = async (): Promise<number | null> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const [code] = await within(exited, 10_000, 'the gateway process to exit after SIGTERM');
    await rm(dir, { recursive: true, force: true });
    return code;
  };
  try {
    const started = await within(readStartLine(child, lines, () => stderr), START_TIMEOUT_MS, 'the gateway start line');
    const adminUrl = `http://127.0.0.1:${started.admin.port}`;
    const ready = async (): Promise<true | undefined> => {
      const response = await fetch(`${adminUrl}/readyz`).catch(() => undefined);
      return response?.status === 200 ? true : undefined;
    };
    await pollUntil(ready, START_TIMEOUT_MS, '/readyz = 200');
    return {
      pid: child.pid!,
      url: `http://127.0.0.1:${started.listen.port}`,
      adminUrl,
      lines,
      peakRssBytes: () => peakRssBytes(child.pid!),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

async function peakRssBytes(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const match = /^VmHWM:\s+(\d+) kB$/m.exec(status);
  if (!match) throw new Error(`no VmHWM in /proc/${pid}/status`);
  return Number(match[1]) * 1024;
}
