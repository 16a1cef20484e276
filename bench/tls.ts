// The `tls` scenario: one zonegate with a plain and an HTTPS listener, measured in the same run over plain HTTP/1.1,
// HTTPS HTTP/1.1 and HTTPS HTTP/2, every connection kept alive. The load generator is undici (autocannon speaks
// neither a private CA nor HTTP/2), used the same way for the three, so the differences are the protocols'.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHistogram, performance } from 'node:perf_hooks';
import { Pool } from 'undici';
import { stringify as toYaml } from 'yaml';

const LOOPBACK = '127.0.0.1';
const BENCH_PATH = '/bench/item';

export interface TlsBenchContext {
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
  readonly rounds: number;
  readonly workDir: string;
  readonly upstreamPort: number;
  freePort(): Promise<number>;
  /** starts `bin/zonegate.js run --config <file>` and resolves once `readyUrl` answers 200 */
  startZonegate(configFile: string, readyUrl: string): Promise<{ cpuSeconds(): number | undefined; stop(): Promise<void> }>;
}

type Mode = 'http/1.1' | 'https http/1.1' | 'https h2';

interface ModeStats {
  readonly mode: Mode;
  readonly requestsPerSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly cpuMicrosPerResponse: number | undefined;
}

/** A self-signed certificate for 127.0.0.1, made with the openssl CLI. */
function certificate(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'bench.crt');
  const key = join(dir, 'bench.key');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-keyout', key, '-out', cert,
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
  ], { stdio: 'ignore' });
  return { cert, key };
}

/**
 * `connections` requests in flight at all times. HTTP/1.1 takes one connection per request in flight; HTTP/2 carries
 * them all as streams of one connection, as a browser or an HTTP/2 client library would.
 */
async function drive(pool: Pool, inFlight: number, seconds: number): Promise<{ responses: number; errors: number; micros: ReturnType<typeof createHistogram> }> {
  const micros = createHistogram();
  const end = performance.now() + seconds * 1000;
  let responses = 0;
  let errors = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const started = performance.now();
      try {
        const res = await pool.request({ method: 'GET', path: BENCH_PATH });
        await res.body.dump();
        if (res.statusCode === 200) responses++;
        else errors++;
      } catch {
        errors++;
      }
      micros.record(Math.max(1, Math.round((performance.now() - started) * 1000)));
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  return { responses, errors, micros };
}

export async function runTlsScenario(ctx: TlsBenchContext): Promise<void> {
  console.log('\n[tls] one zonegate, one instance: plain HTTP/1.1 vs HTTPS HTTP/1.1 vs HTTPS HTTP/2, keep-alive, same run');
  const { cert, key } = certificate(ctx.workDir);
  const [listen, admin, tlsListen] = [await ctx.freePort(), await ctx.freePort(), await ctx.freePort()];
  const config = {
    gateway: {
      listen: `${LOOPBACK}:${listen}`,
      admin: `${LOOPBACK}:${admin}`,
      zone: 'sh-a',
      tls: { listen: `${LOOPBACK}:${tlsListen}`, cert, key },
    },
    topology: { 'cn-east': { shanghai: ['sh-a'] } },
    discovery: { static: { bench: [{ address: `${LOOPBACK}:${ctx.upstreamPort}`, zone: 'sh-a' }] } },
    routes: [{ name: 'bench', match: { prefix: '/' }, service: 'bench' }],
  };
  const configFile = join(ctx.workDir, 'tls.routes.yaml');
  writeFileSync(configFile, toYaml(config));
  const gateway = await ctx.startZonegate(configFile, `http://${LOOPBACK}:${admin}/readyz`);
  const ca = readFileSync(cert);
  const pools: Record<Mode, () => Pool> = {
    'http/1.1': () => new Pool(`http://${LOOPBACK}:${listen}`, { connections: ctx.connections }),
    'https http/1.1': () => new Pool(`https://${LOOPBACK}:${tlsListen}`, { connections: ctx.connections, allowH2: false, connect: { ca } }),
    'https h2': () => new Pool(`https://${LOOPBACK}:${tlsListen}`, { connections: 1, allowH2: true, maxConcurrentStreams: 100, connect: { ca } }),
  };
  const best = new Map<Mode, ModeStats>();
  try {
    for (let round = 1; round <= ctx.rounds; round++) {
      for (const mode of Object.keys(pools) as Mode[]) {
        const pool = pools[mode]();
        try {
          if (ctx.warmupSeconds > 0) await drive(pool, ctx.connections, ctx.warmupSeconds);
          const cpuBefore = gateway.cpuSeconds();
          const started = performance.now();
          const run = await drive(pool, ctx.connections, ctx.durationSeconds);
          const elapsed = (performance.now() - started) / 1000;
          const cpuAfter = gateway.cpuSeconds();
          const stats: ModeStats = {
            mode,
            requestsPerSecond: run.responses / elapsed,
            p50Ms: run.micros.percentile(50) / 1000,
            p99Ms: run.micros.percentile(99) / 1000,
            errors: run.errors,
            cpuMicrosPerResponse: cpuBefore === undefined || cpuAfter === undefined || run.responses === 0 ? undefined : ((cpuAfter - cpuBefore) * 1e6) / run.responses,
          };
          console.log(
            `  ${mode.padEnd(15)} round ${round}/${ctx.rounds}: ${Math.round(stats.requestsPerSecond)} req/s, p50 ${stats.p50Ms.toFixed(2)} ms, ` +
              `p99 ${stats.p99Ms.toFixed(2)} ms, ${stats.errors} errors` +
              (stats.cpuMicrosPerResponse === undefined ? '' : `, ${stats.cpuMicrosPerResponse.toFixed(0)} CPU µs/req`),
          );
          const previous = best.get(mode);
          if (previous === undefined || stats.requestsPerSecond > previous.requestsPerSecond) best.set(mode, stats);
        } finally {
          await pool.close();
        }
      }
    }
  } finally {
    await gateway.stop();
  }
  const plain = best.get('http/1.1')!;
  console.log(`\ntls: best of ${ctx.rounds}`);
  console.log('mode             req/s   p50 ms  p99 ms  errors  CPU µs/req  req/s ÷ plain  CPU/req ÷ plain');
  for (const stats of best.values()) {
    const cpuRatio = stats.cpuMicrosPerResponse && plain.cpuMicrosPerResponse ? (stats.cpuMicrosPerResponse / plain.cpuMicrosPerResponse).toFixed(2) : '-';
    console.log(
      `${stats.mode.padEnd(15)} ${String(Math.round(stats.requestsPerSecond)).padStart(6)}  ${stats.p50Ms.toFixed(2).padStart(6)}  ` +
        `${stats.p99Ms.toFixed(2).padStart(6)}  ${String(stats.errors).padStart(6)}  ${(stats.cpuMicrosPerResponse?.toFixed(0) ?? '-').padStart(10)}  ` +
        `${(stats.requestsPerSecond / plain.requestsPerSecond).toFixed(2).padStart(13)}  ${cpuRatio.padStart(15)}`,
    );
  }
}
