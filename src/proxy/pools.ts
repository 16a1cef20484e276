// One undici Pool per upstream instance origin, created on first use and closed when the instance
// leaves discovery. undici's defaults (unlimited connections, 300 s timeouts) are replaced here.
import { Pool } from 'undici';
import type { GatewayConfig } from '../config/schema.ts';
import type { UpstreamConnectTls } from './upstream-tls.ts';

export type PoolSettings = GatewayConfig['upstream'];

export class UpstreamPools {
  readonly #pools = new Map<string, Pool>();
  #settings: PoolSettings;
  /** per `https://` origin, how to speak TLS to it (absent: the system CAs, the host as server name) */
  #tls: ReadonlyMap<string, UpstreamConnectTls> = new Map();

  constructor(settings: PoolSettings) {
    this.#settings = settings;
  }

  /** The settings pools are created with (the exchange reads the connection cap and queue bounds here). */
  get settings(): PoolSettings {
    return this.#settings;
  }

  get(origin: string): Pool {
    let pool = this.#pools.get(origin);
    if (pool === undefined) {
      const s = this.#settings;
      const tls = origin.startsWith('https:') ? this.#tls.get(origin) : undefined;
      pool = new Pool(origin, {
        connections: s.maxConnections,
        pipelining: 1,
        keepAliveTimeout: s.keepAliveTimeout,
        keepAliveMaxTimeout: Math.max(s.keepAliveTimeout, 1000),
        // an https origin's certificate is verified (undici's default, never turned off here)
        connect: { timeout: s.connectTimeout, keepAlive: true, ...(tls && { ca: tls.ca, servername: tls.servername, cert: tls.cert, key: tls.key }) },
        allowH2: s.allowH2 || tls?.h2 === true,
        headersTimeout: 15_000,
        bodyTimeout: 30_000,
      });
      this.#pools.set(origin, pool);
    }
    return pool;
  }

  /** New settings apply to pools created from now on; existing pools keep theirs until recreated. */
  configure(settings: PoolSettings): void {
    if (JSON.stringify(settings) === JSON.stringify(this.#settings)) return;
    this.#settings = settings;
    for (const origin of [...this.#pools.keys()]) this.#retire(origin);
  }

  /** TLS settings per https origin; a pool whose settings changed is replaced (in-flight requests finish on it). */
  configureTls(byOrigin: ReadonlyMap<string, UpstreamConnectTls>): void {
    for (const origin of [...this.#pools.keys()]) {
      if (origin.startsWith('https:') && byOrigin.get(origin)?.digest !== this.#tls.get(origin)?.digest) this.#retire(origin);
    }
    this.#tls = byOrigin;
  }

  /** Closes pools whose origin no live instance uses; in-flight requests on them finish first. */
  retain(liveOrigins: ReadonlySet<string>): void {
    for (const origin of [...this.#pools.keys()]) if (!liveOrigins.has(origin)) this.#retire(origin);
  }

  get size(): number {
    return this.#pools.size;
  }

  /** Closes every pool once its in-flight requests are done. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#pools.values()].map((pool) => pool.close()));
    this.#pools.clear();
  }

  /** Destroys whatever pools are left, aborting their requests. */
  async destroy(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.allSettled(pools.filter((pool) => !pool.destroyed).map((pool) => pool.destroy()));
  }

  #retire(origin: string): void {
    const pool = this.#pools.get(origin);
    this.#pools.delete(origin);
    pool?.close().catch(() => pool.destroy());
  }
}
