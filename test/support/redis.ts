// Redis for the rate-limit tests. The shared server (SHARED_REDIS_URL, below) is used under a key prefix unique
// to the run, and a test deletes only its own keys; tests that kill, pause or flush Redis start a
// private `redis-server` on a free port and stop it themselves.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Redis } from 'ioredis';
import { pollUntil, refusedPort, within } from './http.ts';

/** A prefix no other run uses (letters, digits and dashes only, so it is safe in a SCAN pattern). */
export function uniqueKeyPrefix(label: string): string {
  return `zonegate-test-${label}-${process.pid}-${Date.now().toString(36)}`;
}

/** Deletes every key under `prefix:` and nothing else. */
export async function deleteKeys(client: Redis, prefix: string): Promise<number> {
  let deleted = 0;
  for await (const keys of client.scanStream({ match: `${prefix}:*`, count: 1000 }) as AsyncIterable<string[]>) {
    if (keys.length > 0) deleted += await client.unlink(...keys);
  }
  return deleted;
}

/** A client for inspecting what the gateway wrote (waits for the connection, unlike the gateway's). */
export async function inspectRedis(url: string): Promise<Redis> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  // reconnect errors while a test has its server down are expected; commands still report theirs
  client.on('error', () => {});
  await client.connect();
  return client;
}

const START_TIMEOUT_MS = 5000;

export interface PrivateRedis {
  readonly port: number;
  /** a Cluster node's bus port (other nodes meet it there) */
  readonly busPort?: number | undefined;
  readonly url: string;
  /** the running server's process, replaced by restart() */
  readonly pid: number;
  /** SIGKILL: connections drop at once, as when a host dies */
  kill(): Promise<void>;
  /** SIGSTOP: connections stay open and nothing answers, as when Redis hangs */
  pause(): void;
  /** SIGCONT after pause() */
  resume(): void;
  /** a new, empty server on the same port */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * `redis-server` on a free loopback port, without persistence. With `cluster`, it is a one-node
 * Cluster that owns every slot, which is enough for ioredis' Cluster client and `CLUSTER KEYSLOT`.
 */
export async function startPrivateRedis(options: { cluster?: boolean } = {}): Promise<PrivateRedis> {
  const redis = await startRedisServer(options.cluster === true);
  if (options.cluster) await formCluster([redis]);
  return redis;
}

/**
 * A Cluster of `masters` nodes, the slots split evenly between them: unlike a one-node Cluster, keys of
 * different slots live on different servers, as they do in production.
 */
export async function startRedisCluster(masters: number): Promise<{ readonly urls: readonly string[]; stop(): Promise<void> }> {
  const started = await Promise.allSettled(Array.from({ length: masters }, () => startRedisServer(true)));
  const nodes = started.flatMap((result) => (result.status === 'fulfilled' ? [result.value] : []));
  const stop = async (): Promise<void> => void (await Promise.all(nodes.map((node) => node.stop())));
  try {
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    await formCluster(nodes);
  } catch (err) {
    await stop(); // a server left running would keep the test process alive
    throw err;
  }
  return { urls: nodes.map((node) => node.url), stop };
}

async function startRedisServer(cluster: boolean): Promise<PrivateRedis> {
  const port = await refusedPort();
  const dir = await mkdtemp(join(tmpdir(), 'zonegate-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir];
  let busPort: number | undefined;
  if (cluster) {
    // without an announced address a lone node lists itself with an empty host, which ioredis cannot dial
    args.push('--cluster-enabled', 'yes', '--cluster-config-file', join(dir, 'nodes.conf'), '--cluster-announce-ip', '127.0.0.1');
    // The bus port defaults to port + 10000, a port nothing reserved: another test's free port could be taken.
    busPort = await refusedPort();
    args.push('--cluster-port', String(busPort));
  }
  let server = await spawnServer(args);
  const url = `redis://127.0.0.1:${port}`;

  const exit = async (signal: NodeJS.Signals): Promise<void> => {
    if (server.exitCode !== null || server.signalCode !== null) return;
    const exited = once(server, 'exit');
    server.kill(signal);
    await within(exited, 5000, `redis-server to exit after ${signal}`);
  };
  return {
    port,
    busPort,
    url,
    get pid() {
      return server.pid!;
    },
    kill: () => exit('SIGKILL'),
    pause: () => void server.kill('SIGSTOP'),
    resume: () => void server.kill('SIGCONT'),
    async restart() {
      await exit('SIGKILL');
      server = await spawnServer(args);
    },
    async stop() {
      server.kill('SIGCONT'); // a paused server would never handle SIGTERM
      await exit('SIGTERM');
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once the server logs that it accepts connections. */
async function spawnServer(args: readonly string[]): Promise<ChildProcess> {
  const server = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  createInterface({ input: server.stdout! }).on('line', (line) => {
    output.push(line);
    if (line.includes('Ready to accept connections')) resolve();
  });
  server.once('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready:\n${output.join('\n')}`)));
  server.once('error', reject);
  await within(promise, START_TIMEOUT_MS, 'redis-server to accept connections');
  return server;
}

/** Splits the 16384 slots evenly over `nodes`, introduces them to each other, and waits until every node says ok. */
async function formCluster(nodes: readonly PrivateRedis[]): Promise<void> {
  const clients = await Promise.all(nodes.map((node) => inspectRedis(node.url)));
  try {
    const share = Math.ceil(16384 / nodes.length);
    for (const [index, client] of clients.entries()) {
      const last = Math.min(16383, (index + 1) * share - 1);
      await client.call('CLUSTER', 'ADDSLOTSRANGE', String(index * share), String(last));
      if (index > 0) await client.call('CLUSTER', 'MEET', '127.0.0.1', String(nodes[0]!.port), String(nodes[0]!.busPort));
    }
    for (const client of clients) {
      await pollUntil(
        async () => ((await client.call('CLUSTER', 'INFO')) as string).includes('cluster_state:ok') || undefined,
        START_TIMEOUT_MS * 2,
        'every node of the cluster to report cluster_state:ok',
      );
    }
  } finally {
    for (const client of clients) client.disconnect();
  }
}

/** Whether a Redis server answers PING on 127.0.0.1:`port` within a second. */
function answersPing(port: number): Promise<boolean> {
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const socket = connect({ host: '127.0.0.1', port });
  socket.setTimeout(1000, () => socket.destroy());
  socket.once('connect', () => socket.end('PING\r\n'));
  let reply = '';
  socket.on('data', (chunk: Buffer) => (reply += chunk.toString()));
  socket.once('error', () => resolve(false));
  socket.once('close', () => resolve(reply.startsWith('+PONG')));
  return promise;
}

/**
 * The Redis the shared tests use: 127.0.0.1:`port` when a server answers there; otherwise (a fresh machine) a
 * `redis-server` this process starts on a free port, without persistence, and kills when it exits.
 */
export async function sharedRedis(port = 6379): Promise<string> {
  if (await answersPing(port)) return `redis://127.0.0.1:${port}`;
  const own = await refusedPort();
  const dir = await mkdtemp(join(tmpdir(), 'zonegate-redis-'));
  const server = spawn('redis-server', ['--port', String(own), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  server.unref(); // the test process exits when its tests are done, and takes the server with it
  process.once('exit', () => {
    server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const failed = new Promise<never>((_, reject) => {
    const help = 'the tests need Redis: run one on 127.0.0.1:6379, put redis-server on PATH, or set ZONEGATE_TEST_REDIS_URL';
    server.once('error', (err) => reject(new Error(`nothing answers on 127.0.0.1:${port} and redis-server cannot start (${err.message}): ${help}`)));
    server.once('exit', (code) => reject(new Error(`nothing answers on 127.0.0.1:${port} and redis-server exited (${code}): ${help}`)));
  });
  failed.catch(() => {}); // the race below reports it; an exit after the server is up is the test's business
  await Promise.race([pollUntil(async () => (await answersPing(own)) || undefined, START_TIMEOUT_MS, 'redis-server to answer'), failed]);
  return `redis://127.0.0.1:${own}`;
}

/** $ZONEGATE_TEST_REDIS_URL, else sharedRedis(). (Last in the file: it runs when the module loads.) */
export const SHARED_REDIS_URL = process.env.ZONEGATE_TEST_REDIS_URL ?? (await sharedRedis());
