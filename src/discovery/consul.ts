// Consul discovery: one long-lived blocking query on /v1/health/service/<name> per service and datacenter,
// through the `consul` client (the only file that knows it). Answers become InstanceSpecs; the registry
// only hears of real changes. Errors never empty a snapshot: the last good one keeps serving.
import { EventEmitter } from 'node:events';
import { readFile, rename, writeFile } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import Consul from 'consul';
import { consulUrl } from '../config/endpoints.ts';
import type { ConsulConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { InstanceSpec } from './instance.ts';
import type { Registry } from './registry.ts';

/** The parts of a /v1/health/service entry zonegate reads (Consul API docs, health.mdx). */
interface HealthEntry {
  Node: { Node: string; Address: string; Datacenter?: string };
  Service: {
    ID: string;
    Service: string;
    Tags: string[] | null;
    Address: string;
    Port: number;
    Meta: Record<string, string> | null;
    Weights?: { Passing: number; Warning: number };
  };
  Checks: { CheckID: string; Status: 'passing' | 'warning' | 'critical' | 'maintenance' }[];
}

/**
 * health.service as the client really behaves (lib/utils.js `options`): its typings omit index, wait, timeout
 * and ctx, and with `ctx.includeResponse` it resolves to [response, body], which is how X-Consul-Index is read.
 */
type BlockingHealthService = (query: {
  service: string;
  dc: string;
  index?: string;
  wait?: string;
  timeout: number;
  ctx: EventEmitter & { includeResponse: true };
}) => Promise<[IncomingMessage, HealthEntry[]]>;

const BACKOFF_BASE_MS = 200;
const BACKOFF_CAP_MS = 30_000;
/** a blocking query that returns sooner than this is followed by a pause: never a busy loop */
const MIN_QUERY_INTERVAL_MS = 50;
/**
 * An answer without X-Consul-Index (a proxy in front of Consul that drops it) leaves nothing to block on: such
 * a watch polls at this pace instead (Traefik's Consul provider polls every 15 s), and says so once.
 */
const UNINDEXED_POLL_MS = 5_000;
/** rebuilds per service are coalesced to at most one per this interval under churn */
const MIN_PUBLISH_INTERVAL_MS = 250;

function jitter(ms: number): number {
  return ms * (0.8 + Math.random() * 0.4);
}

/** Resolves `address`/`token` with Consul's own environment variables as fallbacks. */
export function consulEndpoint(config: Pick<ConsulConfig, 'address' | 'token'>, env: NodeJS.ProcessEnv = process.env): { url: URL; token: string } {
  const address = config.address || env.CONSUL_HTTP_ADDR || 'http://127.0.0.1:8500';
  return { url: consulUrl(address), token: config.token || env.CONSUL_HTTP_TOKEN || '' };
}

/** A client for a `discovery.consul`-style endpoint (also what the demo registers its instances with). */
export function consulClient(config: Pick<ConsulConfig, 'address' | 'token' | 'stale'>): Consul {
  const { url, token } = consulEndpoint(config);
  return new Consul({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    secure: url.protocol === 'https:',
    defaults: { ...(token ? { token } : {}), ...(config.stale ? { stale: true } : {}) },
  });
}

/**
 * Consul's weighting (the rule its DNS interface applies): every check passing → Weights.Passing; some warning,
 * none critical → Weights.Warning, where 0 means "send nothing"; anything critical → no traffic at all.
 */
function healthAndWeight(entry: HealthEntry, acceptWarning: boolean): { healthy: boolean; weight: number } {
  // Consul always stores weights (nil → {1, 1}) and never a Passing below 1; the fallback covers other servers.
  const passingWeight = entry.Service.Weights && entry.Service.Weights.Passing >= 1 ? entry.Service.Weights.Passing : 1;
  const warningWeight = entry.Service.Weights ? entry.Service.Weights.Warning : 1;
  const statuses = entry.Checks.map((check) => check.Status);
  if (statuses.every((status) => status === 'passing')) return { healthy: true, weight: passingWeight };
  const warningOnly = statuses.every((status) => status === 'passing' || status === 'warning');
  if (acceptWarning && warningOnly && warningWeight > 0) return { healthy: true, weight: warningWeight };
  // An instance without traffic keeps a usable weight so it balances normally once it is healthy again.
  return { healthy: false, weight: passingWeight };
}

export function entryToSpec(entry: HealthEntry, datacenter: string, config: ConsulConfig): InstanceSpec {
  const service = entry.Service;
  const tags = service.Tags ?? [];
  const meta = service.Meta ?? {};
  const zoneTag = tags.find((tag) => tag.startsWith('zone='));
  const { healthy, weight } = healthAndWeight(entry, config.acceptWarning);
  return {
    // A service ID is unique per agent only (it defaults to the service name): the node makes it unique.
    id: `${entry.Node.Node}/${service.ID}@${datacenter}`,
    service: service.Service,
    host: service.Address || entry.Node.Address,
    port: service.Port,
    zone: meta[config.zoneMeta] ?? zoneTag?.slice('zone='.length) ?? '',
    weight,
    tags,
    meta,
    healthy,
    datacenter,
  };
}

/**
 * The index for the next blocking query, by Consul's rules: an index that went backwards (a snapshot restore,
 * a server change) restarts from 0, one non-blocking read; one that is below 1 becomes 1, because a query with
 * index 0 never blocks and would turn the watch into a polling loop. A missing one keeps the last index (or 1).
 */
export function nextQueryIndex(previous: number, reported: number): number {
  if (Number.isNaN(reported)) return Math.max(previous, 1);
  if (!(reported >= 1)) return 1;
  return reported < previous ? 0 : reported;
}

function canonical(specs: readonly InstanceSpec[]): string {
  return JSON.stringify([...specs].sort((a, b) => (a.id < b.id ? -1 : 1)));
}

/** Merges one service's datacenters, applies the flap guard, coalesces rebuilds, publishes. */
class ServiceState {
  readonly #byDatacenter = new Map<string, readonly InstanceSpec[]>();
  #published = '';
  #publishedHealthy = -1;
  #held = false;
  #lastPublishAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  lastAnswerAt = 0;
  readonly service: string;
  readonly owner: ConsulDiscovery;

  constructor(service: string, owner: ConsulDiscovery) {
    this.service = service;
    this.owner = owner;
  }

  /** Returns false when the update is held by the flap guard (the caller asks again at once). */
  update(datacenter: string, specs: readonly InstanceSpec[]): boolean {
    this.lastAnswerAt = Date.now();
    this.#byDatacenter.set(datacenter, specs);
    const merged = [...this.#byDatacenter.values()].flat();
    const healthy = merged.filter((spec) => spec.healthy).length;
    const dropRatio = this.#publishedHealthy > 0 ? 1 - healthy / this.#publishedHealthy : 0;
    if (dropRatio > this.owner.config.maxDropRatio && !this.#held) {
      this.#held = true;
      this.owner.logger.warn(
        { service: this.service, healthyBefore: this.#publishedHealthy, healthyNow: healthy },
        'consul update would remove too many healthy instances at once; holding it for one confirmation round',
      );
      return false;
    }
    this.#held = false;
    const text = canonical(merged);
    if (text === this.#published) return true;
    this.#published = text;
    this.#publishedHealthy = healthy;
    this.#schedulePublish(merged);
    return true;
  }

  #pending: (() => void) | undefined;

  #schedulePublish(specs: readonly InstanceSpec[]): void {
    clearTimeout(this.#timer);
    const wait = this.#lastPublishAt + MIN_PUBLISH_INTERVAL_MS - performance.now();
    const publish = (): void => {
      clearTimeout(this.#timer);
      this.#pending = undefined;
      this.#lastPublishAt = performance.now();
      this.owner.publish(this.service, specs);
    };
    if (wait <= 0) return publish();
    this.#pending = publish;
    this.#timer = setTimeout(publish, wait);
  }

  /** Publishes a coalesced update now instead of when its interval ends. */
  flush(): void {
    this.#pending?.();
  }

  stop(): void {
    clearTimeout(this.#timer);
  }
}

/** One blocking-query loop for a (service, datacenter). */
class Watch {
  readonly #cancel = new EventEmitter();
  readonly #firstRound = Promise.withResolvers<void>();
  #stopped = false;
  #failures = 0;
  #warnedUnindexed = false;
  readonly owner: ConsulDiscovery;
  readonly state: ServiceState;
  readonly datacenter: string;

  constructor(owner: ConsulDiscovery, state: ServiceState, datacenter: string) {
    this.owner = owner;
    this.state = state;
    this.datacenter = datacenter;
    void this.#loop();
  }

  stop(): void {
    this.#stopped = true;
    this.#cancel.emit('cancel');
    this.#firstRound.resolve();
  }

  /** Settles once the first query has been answered or has failed. */
  get firstRound(): Promise<void> {
    return this.#firstRound.promise;
  }

  async #loop(): Promise<void> {
    let index = 0;
    while (!this.#stopped) {
      const started = performance.now();
      try {
        const { entries, nextIndex } = await this.#query(index);
        if (this.#stopped) return;
        if (this.#failures > 0) this.owner.logger.info({ service: this.state.service, dc: this.datacenter }, 'consul reachable again');
        this.#failures = 0;
        index = nextQueryIndex(index, nextIndex);
        const specs = entries.map((entry) => entryToSpec(entry, this.datacenter, this.owner.config));
        if (!this.state.update(this.datacenter, specs)) index = 0;
        this.#firstRound.resolve();
        const interval = Number.isNaN(nextIndex) ? this.#unindexed() : MIN_QUERY_INTERVAL_MS;
        const elapsed = performance.now() - started;
        if (elapsed < interval) await this.#pause(interval - elapsed);
      } catch (err) {
        if (this.#stopped) return;
        if (this.#failures++ === 0) {
          this.owner.logger.warn(
            { service: this.state.service, dc: this.datacenter, err: (err as Error).message },
            'consul query failed; serving the last known snapshot',
          );
          await this.owner.fallBackToFile(this.state.service);
        }
        this.#firstRound.resolve();
        await this.#pause(jitter(Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** (this.#failures - 1))));
      }
    }
  }

  #unindexed(): number {
    if (!this.#warnedUnindexed) {
      this.#warnedUnindexed = true;
      this.owner.logger.warn(
        { service: this.state.service, dc: this.datacenter, pollMs: UNINDEXED_POLL_MS },
        'consul answered without X-Consul-Index, so queries cannot block; polling instead',
      );
    }
    return UNINDEXED_POLL_MS;
  }

  async #query(index: number): Promise<{ entries: HealthEntry[]; nextIndex: number }> {
    const waitMs = Math.round(jitter(this.owner.config.wait));
    const ctx = Object.assign(this.#cancel, { includeResponse: true as const });
    const health = this.owner.client.health;
    const [res, body] = await (health.service as unknown as BlockingHealthService).call(health, {
      service: this.state.service,
      dc: this.datacenter,
      ...(index > 0 ? { index: String(index), wait: `${waitMs}ms` } : {}),
      // Consul may hold a query up to wait + wait/16; past that the connection is dead.
      timeout: index > 0 ? waitMs + waitMs / 16 + 5000 : 10_000,
      ctx,
    });
    return { entries: body, nextIndex: Number(res.headers['x-consul-index']) };
  }

  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const cancel = this.#cancel;
      function done(): void {
        clearTimeout(timer);
        cancel.off('cancel', done);
        resolve();
      }
      cancel.once('cancel', done);
    });
  }
}

/** A snapshot file entry; files written by earlier versions hold whole instances, ejection included. */
type FileEntry = InstanceSpec & { ejected?: boolean };

function specFromFile(entry: FileEntry): InstanceSpec {
  const { id, service, host, port, zone, weight, tags, meta, datacenter } = entry;
  // An ejected entry's `healthy: false` may be only its breaker's, and that breaker is gone: this process's
  // breakers judge the instance afresh.
  return { id, service, host, port, zone, weight, tags, meta, healthy: entry.healthy || entry.ejected === true, datacenter };
}

export class ConsulDiscovery {
  readonly client: Consul;
  readonly config: ConsulConfig;
  readonly logger: Logger;
  readonly #registry: Registry;
  readonly #states = new Map<string, { state: ServiceState; watches: Watch[] }>();
  #fileSnapshots: Promise<Record<string, FileEntry[]>> | undefined;
  #persistTimer: NodeJS.Timeout | undefined;

  constructor(config: ConsulConfig, registry: Registry, logger: Logger) {
    this.config = config;
    this.logger = logger;
    this.#registry = registry;
    this.client = consulClient(config);
  }

  /** Watches exactly these services (the ones routes send to that no static list provides). */
  watch(services: ReadonlySet<string>): void {
    for (const [service, entry] of this.#states) {
      if (services.has(service)) continue;
      for (const watch of entry.watches) watch.stop();
      entry.state.stop();
      this.#states.delete(service);
    }
    for (const service of services) {
      if (this.#states.has(service)) continue;
      const state = new ServiceState(service, this);
      const watches = this.config.datacenters.map((dc) => new Watch(this, state, dc));
      this.#states.set(service, { state, watches });
    }
  }

  /** Settles once every watch has had its first answer (or failure): what a one-shot reader waits for. */
  async firstRound(): Promise<void> {
    await Promise.all([...this.#states.values()].flatMap(({ watches }) => watches.map((watch) => watch.firstRound)));
    for (const { state } of this.#states.values()) state.flush();
  }

  /** Seconds since each watched service last heard from Consul (Infinity: never). */
  snapshotAges(): Map<string, number> {
    const now = Date.now();
    return new Map([...this.#states].map(([service, { state }]) => [service, state.lastAnswerAt ? (now - state.lastAnswerAt) / 1000 : Infinity]));
  }

  publish(service: string, specs: readonly InstanceSpec[]): void {
    this.#registry.replace(service, specs);
    if (this.config.snapshotFile) this.#persistSoon();
  }

  /** Start-up during a Consul outage: serve the snapshot file's instances until Consul answers. */
  async fallBackToFile(service: string): Promise<void> {
    if (!this.config.snapshotFile || this.#registry.snapshot(service)) return;
    this.#fileSnapshots ??= readFile(this.config.snapshotFile, 'utf8').then(
      (text) => JSON.parse(text) as Record<string, FileEntry[]>,
      () => ({}),
    );
    const specs = (await this.#fileSnapshots)[service]?.map(specFromFile);
    if (specs && !this.#registry.snapshot(service)) {
      this.#registry.replace(service, specs);
      this.logger.warn({ service, file: this.config.snapshotFile, instances: specs.length }, 'serving instances from the snapshot file');
    }
  }

  stop(): void {
    clearTimeout(this.#persistTimer);
    this.watch(new Set());
    this.client.destroy();
  }

  #persistSoon(): void {
    clearTimeout(this.#persistTimer);
    this.#persistTimer = setTimeout(() => void this.#persist(), 1000);
    this.#persistTimer.unref();
  }

  async #persist(): Promise<void> {
    const file = this.config.snapshotFile!;
    // Discovery's own verdicts, not the snapshot's: an ejection belongs to a breaker of this process, and a
    // gateway restarted from the file has no breaker that would ever readmit the instance.
    const snapshot: Record<string, readonly InstanceSpec[]> = {};
    for (const service of this.#states.keys()) {
      const specs = this.#registry.specs(service);
      if (specs) snapshot[service] = specs;
    }
    try {
      await writeFile(`${file}.tmp`, JSON.stringify(snapshot));
      await rename(`${file}.tmp`, file);
    } catch (err) {
      this.logger.warn({ file, err: (err as Error).message }, 'could not write the discovery snapshot file');
    }
  }
}
