// Consul discovery, assembled: per routed service one ServiceMerge and one Watch per datacenter; answers are
// checked and mapped (consul-entries.ts), merged (consul-merge.ts), published to the registry and kept in
// the snapshot file (snapshot-file.ts). Errors never empty a snapshot: the last good one keeps serving.
import type { ConsulConfig } from '../config/schema.ts';
import { publishEvent } from '../observability/events.ts';
import type { Logger } from '../observability/logger.ts';
import { consulClient, queryHealth, type ConsulClient } from './consul-client.ts';
import { mapHealthAnswer } from './consul-entries.ts';
import { ServiceMerge } from './consul-merge.ts';
import { Watch } from './consul-watch.ts';
import type { InstanceSpec } from './instance.ts';
import type { Registry } from './registry.ts';
import { loadSnapshotFile, SnapshotWriter, type SnapshotFileContent } from './snapshot-file.ts';

export { consulClient } from './consul-client.ts';

/** malformed entries are logged at most once per this interval per service and datacenter */
const SKIPPED_LOG_INTERVAL_MS = 60_000;

/** A routed service whose datacenters have not all answered yet. */
export interface MissingService {
  readonly service: string;
  readonly datacenters: readonly string[];
}

interface Watched {
  readonly merge: ServiceMerge;
  readonly watches: readonly Watch[];
  lastAnswerAt: number;
}

export class ConsulDiscovery {
  readonly client: ConsulClient;
  readonly config: ConsulConfig;
  readonly #logger: Logger;
  readonly #registry: Registry;
  readonly #watched = new Map<string, Watched>();
  /** the snapshot file as read at start: it stands in for datacenters that have not answered yet */
  readonly #file: SnapshotFileContent;
  readonly #writer: SnapshotWriter | undefined;
  readonly #skippedLoggedAt = new Map<string, number>();
  /** datacenters whose last query failed: the dashboard hears of each change, not of each query */
  readonly #unreachable = new Set<string>();

  /** `writeSnapshotFile: false` for one-shot readers (`zonegate explain`): they read the file but leave it alone */
  constructor(config: ConsulConfig, registry: Registry, logger: Logger, { writeSnapshotFile = true } = {}) {
    this.config = config;
    this.#logger = logger;
    this.#registry = registry;
    this.client = consulClient(config);
    const file = config.snapshotFile;
    this.#file = file ? loadSnapshotFile(file, logger) : {};
    this.#writer = file && writeSnapshotFile ? new SnapshotWriter({ file, logger, collect: () => this.#persisted() }) : undefined;
  }

  /** Watches exactly these services (the ones routes send to that no static list provides). */
  watch(services: ReadonlySet<string>): void {
    for (const [service, watched] of this.#watched) {
      if (services.has(service)) continue;
      for (const watch of watched.watches) watch.stop();
      watched.merge.stop();
      this.#watched.delete(service);
    }
    for (const service of services) if (!this.#watched.has(service)) this.#watched.set(service, this.#start(service));
  }

  /** Settles once every watch has had its first answer (or failure): what a one-shot reader waits for. */
  async firstRound(): Promise<void> {
    await Promise.all(this.#watches().map((watch) => watch.firstRound));
    for (const { merge } of this.#watched.values()) merge.flush();
  }

  /**
   * Start-up warming (Envoy's cluster warming): settles once every datacenter has answered for every watched
   * service, or after `initialFetchTimeout`, logging what is still missing and served from the snapshot file.
   */
  async warm(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.config.initialFetchTimeout)));
    await Promise.race([Promise.all(this.#watches().map((watch) => watch.firstAnswer)), timeout]);
    clearTimeout(timer);
    for (const { merge } of this.#watched.values()) merge.flush();
    const missing = this.missing();
    if (missing.length === 0) return;
    this.#logger.warn(
      {
        initialFetchTimeoutMs: this.config.initialFetchTimeout,
        missing,
        fromSnapshotFile: missing.filter(({ service }) => this.#file[service] !== undefined).map(({ service }) => service),
      },
      'consul has not answered for every service and datacenter within initialFetchTimeout; serving what there is',
    );
  }

  /** Watched services with the datacenters that have not answered for them yet. */
  missing(): MissingService[] {
    const missing: MissingService[] = [];
    for (const [service, { merge, watches }] of this.#watched) {
      const datacenters = watches.map((watch) => watch.datacenter).filter((dc) => !merge.answered(dc));
      if (datacenters.length > 0) missing.push({ service, datacenters });
    }
    return missing;
  }

  /** Seconds since each watched service last heard from Consul (Infinity: never). */
  snapshotAges(): Map<string, number> {
    const now = Date.now();
    return new Map([...this.#watched].map(([service, { lastAnswerAt }]) => [service, lastAnswerAt ? (now - lastAnswerAt) / 1000 : Infinity]));
  }

  stop(): void {
    // a change still waiting for its turn is written now: the file a restart reads is the newest there was
    this.#writer?.flush();
    this.#writer?.stop();
    this.watch(new Set());
    this.client.destroy();
  }

  #watches(): Watch[] {
    return [...this.#watched.values()].flatMap(({ watches }) => watches);
  }

  #start(service: string): Watched {
    const merge = new ServiceMerge({
      service,
      maxDropRatio: this.config.maxDropRatio,
      publish: (specs, live) => {
        try {
          this.#registry.replace(service, specs);
        } catch (err) {
          // a coalesced publish runs from a timer: whatever fails here must not take the process with it
          this.#logger.error({ service, err: err instanceof Error ? err.stack : String(err) }, 'could not publish a consul update');
          return;
        }
        // the file is only ever rewritten from Consul's answers, never from itself
        if (live) this.#writer?.changed();
      },
      held: (detail) =>
        this.#logger.warn(detail, 'consul update would remove too many healthy instances at once; holding it for one confirmation round'),
    });
    const watched: Watched = { merge, watches: [], lastAnswerAt: 0 };
    // A service that already serves (a reload that replaced discovery) keeps its instances until each
    // datacenter answers again; a new one starts from the file.
    const serving = this.#registry.specs(service);
    if (serving) merge.seed(this.#byDatacenter(serving));
    else this.#seedFromFile(service, merge);
    const watches = this.config.datacenters.map(
      (datacenter) =>
        new Watch({
          service,
          datacenter,
          waitMs: this.config.wait,
          logger: this.#logger,
          query: (query) => this.#reachability(service, watched, datacenter, queryHealth(this.client, query)),
          accept: (body) => {
            const { specs, skipped } = mapHealthAnswer(body, { datacenter, config: this.config });
            if (skipped.length > 0) this.#reportSkipped(service, datacenter, skipped);
            watched.lastAnswerAt = Date.now();
            return merge.update(datacenter, specs);
          },
        }),
    );
    return Object.assign(watched, { watches });
  }

  /** Publishes a datacenter becoming unreachable or reachable again; a watch stopped meanwhile says nothing. */
  #reachability<T>(service: string, watched: Watched, dc: string, answer: Promise<T>): Promise<T> {
    const report = (reachable: boolean, why = ''): void => {
      if (this.#watched.get(service) !== watched || this.#unreachable.has(dc) !== reachable) return;
      if (reachable) this.#unreachable.delete(dc);
      else this.#unreachable.add(dc);
      const message = reachable ? `consul ${dc} answers again` : `consul ${dc} unreachable (${why}); serving the last known snapshot`;
      publishEvent(this.#logger, { kind: 'consul', level: reachable ? 'info' : 'warn', message, datacenter: dc });
    };
    answer.then(
      () => report(true),
      (err: unknown) => report(false, err instanceof Error ? err.message : String(err)),
    );
    return answer;
  }

  #seedFromFile(service: string, merge: ServiceMerge): void {
    const specs = this.#file[service];
    if (!specs) return;
    merge.seed(this.#byDatacenter(specs));
    this.#logger.warn(
      { service, file: this.config.snapshotFile, instances: specs.length },
      'serving instances from the snapshot file until consul answers',
    );
  }

  /** Instances by datacenter; one no longer configured is left out, one without any is from the first (older files). */
  #byDatacenter(specs: readonly InstanceSpec[]): Map<string, InstanceSpec[]> {
    const configured = specs.filter((spec) => spec.datacenter === undefined || this.config.datacenters.includes(spec.datacenter));
    return Map.groupBy(configured, (spec) => spec.datacenter ?? this.config.datacenters[0]!);
  }

  #reportSkipped(service: string, dc: string, skipped: readonly string[]): void {
    const key = `${service}\0${dc}`;
    const now = Date.now();
    if (now - (this.#skippedLoggedAt.get(key) ?? -Infinity) < SKIPPED_LOG_INTERVAL_MS) return;
    this.#skippedLoggedAt.set(key, now);
    this.#logger.warn(
      { service, dc, skipped: skipped.length, problems: skipped.slice(0, 3) },
      'consul answer entries skipped: they do not hold what an instance needs (logged at most once a minute)',
    );
  }

  /** Discovery's own verdicts, not the snapshot's: an ejection belongs to a breaker of this process. */
  #persisted(): Record<string, readonly InstanceSpec[]> {
    const snapshot: Record<string, readonly InstanceSpec[]> = {};
    for (const service of this.#watched.keys()) {
      const specs = this.#registry.specs(service);
      if (specs) snapshot[service] = specs;
    }
    return snapshot;
  }
}
