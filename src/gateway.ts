// Wires config → discovery → pipeline → listeners, and owns start, reload and stop.
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { faultControl } from './admin/faults.ts';
import { LiveDashboard } from './admin/live.ts';
import { createAdminServer } from './admin/server.ts';
import { checkAdmin } from './config/checks.ts';
import { routesView, upstreamsView } from './admin/views.ts';
import type { Config } from './config/schema.ts';
import type { ConsulDiscovery, MissingService } from './discovery/consul.ts';
import type { Instance } from './discovery/instance.ts';
import type { Registry } from './discovery/registry.ts';
import { loadStatic } from './discovery/static.ts';
import { listenOn } from './listener/listen.ts';
import { ProxyListeners } from './listener/listeners.ts';
import { reloadedTls } from './listener/tls.ts';
import { tlsByOrigin, UpstreamTlsSettings, type UpstreamConnectTls } from './proxy/upstream-tls.ts';
import { publishEvent } from './observability/events.ts';
import { createLogger, flushLogger, type Logger } from './observability/logger.ts';
import { GatewayMetrics } from './observability/metrics.ts';
import { compileState, Pipeline } from './pipeline.ts';
import { UpstreamPools } from './proxy/pools.ts';
import { Breakers, type BreakerState } from './resilience/breakers.ts';
import { RetryBudgets } from './resilience/retry-budget.ts';
import { loadRedisSupport, RateLimiter, redisSupportReady, type SharedBuckets } from './ratelimit/limiter.ts';
import { registerRateLimitMetrics } from './ratelimit/metrics.ts';
import type { RedisStore } from './ratelimit/redis-store.ts';
import { explain, type Explanation, type ExplainQuery } from './routing/explain.ts';
import { createUpstreams, type Upstreams } from './routing/pick.ts';
import { RouteTable } from './routing/route-table.ts';
import { Topology } from './topology.ts';

/** How long a starting gateway, or a reload to another Redis, waits for Redis before it serves from `redis.onError` (logged). */
const REDIS_START_WAIT_MS = 2000;
const POOL_CLOSE_WAIT_MS = 2000;

/** The consul client is loaded only by configs with `discovery.consul`. */
let consulModule: typeof import('./discovery/consul.ts') | undefined;

/** Loads what only some configs use (Redis, Consul clients), so a gateway without them stays small. */
async function loadOptionalSupport(config: Config): Promise<void> {
  await loadRedisSupport(config.redis);
  if (config.discovery.consul) consulModule ??= await import('./discovery/consul.ts');
}

function optionalSupportReady(config: Config): boolean {
  return redisSupportReady(config.redis) && (config.discovery.consul === undefined || consulModule !== undefined);
}

export interface GatewayOptions {
  readonly logger?: Logger;
  readonly worker?: WorkerRole;
}

/** This gateway is one worker of `zonegate run --workers` (src/workers/): the primary holds the admin listener and discovery. */
export interface WorkerRole {
  readonly workers: number;
  /** Consul's instances come from the primary's watch: fills the registry now and on every change */
  feed(registry: Registry): void;
  /** the primary's in-memory rate-limit buckets */
  readonly buckets: SharedBuckets;
}

export class Gateway {
  readonly logger: Logger;
  readonly registry: Registry;
  readonly pools: UpstreamPools;
  readonly upstreams: Upstreams;
  #topology: Topology;
  #consul: ConsulDiscovery | undefined;
  readonly #limiter: RateLimiter;
  readonly breakers: Breakers;
  /** per routed service: what retries may still add (a reload forgets services no longer routed) */
  readonly #budgets = new RetryBudgets();
  readonly metrics: GatewayMetrics;
  readonly live: LiveDashboard;
  readonly #pipeline: Pipeline;
  readonly #listeners: ProxyListeners;
  readonly #admin: Server;
  /** TLS to instances: the running config's settings, files read */
  #upstreamTls: UpstreamTlsSettings;
  /** instances of a service listed in discovery.tls that speak plain HTTP, warned about once */
  readonly #plainWarned = new Set<string>();
  #adminAddress: AddressInfo | undefined;
  #stopping: Promise<void> | undefined;
  /** reloads asked for so far: a reload that waited applies only if none came after it */
  #reloads = 0;
  /** starting, and waiting for discovery's first answers: not ready */
  #discoveryWarming = false;
  /** Redis connections a reload opened and is waiting for */
  readonly #warming = new Set<RedisStore>();
  readonly #worker: WorkerRole | undefined;

  private constructor(config: Config, options: GatewayOptions) {
    this.#worker = options.worker;
    this.logger = options.logger ?? createLogger();
    this.#topology = new Topology(config.topology);
    this.upstreams = createUpstreams(this.#topology);
    this.registry = this.upstreams.registry;
    this.pools = new UpstreamPools(config.gateway.upstream);
    this.#upstreamTls = new UpstreamTlsSettings(config.discovery);
    const retainPools = (): void => {
      this.pools.retain(this.#liveOrigins());
      this.pools.configureTls(this.#tlsByOrigin());
    };
    this.registry.on('change', retainPools);
    this.registry.on('removed', retainPools);
    loadStatic(this.registry, config.discovery);
    options.worker?.feed(this.registry);
    this.#useConsul(this.#consulFor(config), config, new RouteTable(config.routes).services());
    this.#limiter = new RateLimiter(config.redis, this.logger, { shared: options.worker?.buckets, workers: options.worker?.workers });
    this.breakers = new Breakers(this.registry, this.logger);
    const breakerState = (instance: Instance): BreakerState => this.breakers.state(instance);
    const inFlight = (instance: Instance): number => this.upstreams.inFlight.load(instance);
    this.metrics = new GatewayMetrics({
      registry: this.registry,
      breakerState,
      inFlight,
      unknownRegions: () => this.#pipeline.state.callers.unknownCount,
    });
    registerRateLimitMetrics(this.metrics.registry, this.#limiter.stats);
    this.#pipeline = new Pipeline(
      compileState(config, this.#topology, this.logger, this.#limiter),
      { upstreams: this.upstreams, pools: this.pools, breakers: this.breakers, budgets: this.#budgets },
      this.logger,
      this.metrics,
    );
    this.breakers.configure(this.#pipeline.state.routes.breakers);
    this.live = new LiveDashboard({
      registry: this.registry,
      topology: () => this.#topology,
      breakerState,
      inFlight,
      stats: this.metrics.live,
      rateLimits: this.#limiter.stats,
      logger: this.logger,
      zone: () => this.config.gateway.zone,
      hasRoute: (name) => this.#pipeline.state.routes.routes.some((route) => route.name === name),
      limitedRoutes: () => new Set(this.#pipeline.state.rateLimits.keys()),
      uses: () => ({ redis: Boolean(this.config.redis?.url || this.config.redis?.cluster?.length), consul: this.#consul !== undefined }),
    });
    const handle = options.worker === undefined ? this.#pipeline.handle : this.#namingWorker(this.#pipeline.handle);
    this.#listeners = new ProxyListeners(config.gateway, handle, this.#pipeline.handleUpgrade);
    this.#admin = createAdminServer({
      isReady: () => this.isReady(),
      readinessDetail: () => this.readinessDetail(),
      token: () => this.config.gateway.adminToken,
      routes: () => routesView(this.#pipeline.state.routes),
      upstreams: () => upstreamsView({ registry: this.registry, breakerState, inFlight }),
      metrics: () => this.metrics,
      faults: faultControl(() => this.#pipeline.state.faults, this.logger),
      live: this.live,
      failed: (err) => this.logger.error({ err: err instanceof Error ? err.stack : String(err) }, 'admin endpoint failed'),
      tokenRejected: (failure) => this.logger.warn(failure, 'admin: a request with a wrong or missing token was refused'),
      explain: (query) => this.explain(query),
    }, config.gateway.limits);
  }

  static async start(config: Config, options: GatewayOptions = {}): Promise<Gateway> {
    await loadOptionalSupport(config);
    const gateway = new Gateway(config, options);
    try {
      // The admin listener first, so /readyz can say what the proxy listener is waiting for.
      if (options.worker === undefined) gateway.#adminAddress = await listenOn(gateway.#admin, config.gateway.admin);
      gateway.live.start();
      await Promise.all([gateway.#limiter.whenReady(REDIS_START_WAIT_MS), gateway.#warmDiscovery()]);
      await gateway.#listeners.listen(config.gateway, options.worker !== undefined, gateway.logger);
    } catch (err) {
      // A listener that cannot bind (EADDRINUSE, EACCES): what did start (the other listener, Redis, Consul
      // watchers) would keep the process alive, serving half a gateway.
      await gateway.stop();
      throw err;
    }
    gateway.logger.info(
      { listen: gateway.address, admin: gateway.#adminAddress, tls: gateway.tlsAddress, routes: config.routes.length },
      options.worker === undefined ? 'zonegate started' : 'worker listening',
    );
    return gateway;
  }

  /** A worker names its process on each response while routing headers are on: which process served is routing too. */
  #namingWorker(handle: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void {
    const pid = String(process.pid);
    return (req, res) => {
      if (this.#pipeline.state.config.gateway.routingHeaders) res.setHeader('x-zonegate-worker', pid);
      handle(req, res);
    };
  }

  get config(): Config {
    return this.#pipeline.state.config;
  }

  /** The proxy listener's bound address (the real port when the config asked for port 0). */
  get address(): AddressInfo {
    return this.#listeners.address!;
  }

  get adminAddress(): AddressInfo {
    return this.#adminAddress!;
  }

  /** The HTTPS listener's bound address; undefined without `gateway.tls`. */
  get tlsAddress(): AddressInfo | undefined {
    return this.#listeners.tlsAddress;
  }

  get topology(): Topology {
    return this.#topology;
  }

  /** Which route, tier and instance would serve a request, and why (GET /admin/explain). */
  explain(query: ExplainQuery): Explanation {
    const { routes, callers, config: running } = this.#pipeline.state;
    const certificates = this.#listeners.certificates;
    return explain({ routes, callers, upstreams: this.upstreams, escapedSlashes: running.gateway.escapedSlashes, certificates }, query);
  }

  isReady(): boolean {
    if (this.#discoveryWarming) return false;
    for (const service of this.#pipeline.state.routes.services()) if (!this.registry.snapshot(service)) return false;
    return true;
  }

  /** What /readyz adds to its status: the routed services and datacenters Consul has not answered for yet. */
  readinessDetail(): { missing: MissingService[] } | undefined {
    const missing = this.#consul?.missing() ?? [];
    return missing.length > 0 ? { missing } : undefined;
  }

  /** Start-up warming: the proxy listener waits for Consul's first answers, up to `initialFetchTimeout`. */
  async #warmDiscovery(): Promise<void> {
    this.#discoveryWarming = true;
    try {
      await this.#consul?.warm();
    } finally {
      this.#discoveryWarming = false;
    }
  }

  /**
   * Applies a new, already validated config without dropping a connection. Listener addresses and
   * listener limits take effect on restart only (logged when they differ). Resolves with whether it applied: a
   * config that failed (logged) or was superseded by a newer one did not.
   */
  reload(config: Config): Promise<boolean> {
    const generation = ++this.#reloads;
    const failed = (err: unknown): false => {
      this.logger.error({ err: String(err) }, 'config reload failed; the running config stays in force');
      publishEvent(this.logger, { kind: 'reload', level: 'warn', message: `config reload failed; the running config stays in force: ${String(err)}` });
      return false;
    };
    const apply = (redis?: RedisStore): boolean => {
      // A newer config arrived while this one waited for its clients: the newer one stands.
      const superseded = generation !== this.#reloads;
      if (superseded || this.#stopping !== undefined) {
        void redis?.close();
        if (superseded) this.logger.info('config reload superseded by a newer config before it could apply');
        return false;
      }
      try {
        this.#apply(config, redis);
        return true;
      } catch (err) {
        if (redis !== undefined && !this.#limiter.isCurrent(redis)) void redis.close();
        return failed(err);
      }
    };
    if (optionalSupportReady(config) && !this.#limiter.changesConnection(config.redis)) return Promise.resolve(apply());
    // A config that newly uses Redis or Consul, or another Redis: their clients load and connect first, while
    // the running config serves, then it applies.
    return this.#connect(config).then(apply, failed);
  }

  async #connect(config: Config): Promise<RedisStore | undefined> {
    await loadOptionalSupport(config);
    if (!this.#limiter.changesConnection(config.redis)) return undefined;
    const store = this.#limiter.connect(config.redis);
    if (store === undefined) return undefined;
    // stop() closes it if it is still warming, which also ends this wait
    this.#warming.add(store);
    try {
      await store.whenAvailable(REDIS_START_WAIT_MS);
    } finally {
      this.#warming.delete(store);
    }
    return store;
  }

  /** What can fail (checks, new clients, the route table) is done before anything running is touched. */
  #apply(loaded: Config, redis: RedisStore | undefined): void {
    const previous = this.config;
    const { listen, admin, limits, h2c, workers } = previous.gateway;
    const { gateway: next } = loaded;
    if (JSON.stringify([listen, admin, limits, h2c, workers]) !== JSON.stringify([next.listen, next.admin, next.limits, next.h2c, next.workers])) {
      this.logger.warn('gateway.listen, gateway.admin, gateway.limits, gateway.h2c and gateway.workers changes apply after a restart');
    }
    // The listeners stay as they were started, so the running config says so, and the admin rule is checked
    // against the address really bound: a reload to a loopback admin address without a token would otherwise
    // leave a listener on all interfaces unprotected.
    const tls = reloadedTls(previous.gateway.tls, loaded.gateway.tls, (message) => this.logger.warn(message));
    const config: Config = { ...loaded, gateway: { ...loaded.gateway, listen, admin, limits, h2c, workers, tls } };
    const [exposed] = checkAdmin(config);
    if (exposed !== undefined) throw new Error(`${exposed.message} (the admin listener moves only on restart)`);
    const topology = new Topology(config.topology);
    const certificates = this.#listeners.certificatesFor(config.gateway.tls, previous.gateway.tls);
    const consul = this.#consulFor(config, previous);
    const upstreamTls = new UpstreamTlsSettings(config.discovery);
    this.#limiter.configure(config.redis, redis);
    const state = compileState(config, topology, this.logger, this.#limiter);
    this.#topology = topology;
    this.upstreams.tiers.setTopology(topology);
    this.registry.setTopology(topology);
    this.pools.configure(config.gateway.upstream);
    this.#upstreamTls = upstreamTls;
    this.pools.configureTls(this.#tlsByOrigin());
    loadStatic(this.registry, config.discovery);
    this.registry.retain(new Set([...Object.keys(config.discovery.static), ...state.routes.services()]));
    this.#useConsul(consul, config, state.routes.services());
    // a counter: what the previous config's caller resolution counted carries over
    state.callers.unknownCount += this.#pipeline.state.callers.unknownCount;
    this.#pipeline.state = state;
    this.breakers.configure(state.routes.breakers);
    this.#budgets.retain(state.routes.services());
    if (certificates !== undefined) this.#listeners.useCertificates(certificates, config.gateway.tls!, this.logger);
    this.logger.info({ routes: config.routes.length }, 'config reloaded');
    publishEvent(this.logger, { kind: 'reload', level: 'info', message: `config reloaded (${config.routes.length} ${config.routes.length === 1 ? 'route' : 'routes'})` });
  }

  /** Stops accepting, lets in-flight requests finish within `gateway.drainTimeout`, then closes pools. */
  stop(): Promise<void> {
    this.#stopping ??= this.#drain();
    return this.#stopping;
  }

  async #drain(): Promise<void> {
    this.logger.info({ drainTimeoutMs: this.config.gateway.drainTimeout }, 'zonegate stopping: draining connections');
    const adminClosed = once(this.#admin, 'close');
    // Responses from now on say `Connection: close`, then the listeners stop accepting and close idle connections.
    this.#pipeline.drain();
    const listenersClosed = this.#listeners.drain(this.config.gateway.drainTimeout, () => {
      this.logger.warn({ tunnels: this.#pipeline.tunnels }, 'drain timeout reached; closing remaining connections');
      // Node lets go of upgraded connections: the listener cannot close until their tunnels end.
      this.#pipeline.closeTunnels();
    });
    this.#admin.close();
    this.#admin.closeAllConnections();
    this.live.stop();
    this.#consul?.stop();
    await Promise.all([listenersClosed, adminClosed]);
    this.breakers.close();
    // In-flight exchanges ended with their connections; a pool that still will not close is destroyed.
    await Promise.race([this.pools.close(), sleep(POOL_CLOSE_WAIT_MS)]);
    await this.pools.destroy();
    await Promise.all([this.#limiter.close(), ...[...this.#warming].map((store) => store.close())]);
    this.logger.info('zonegate stopped');
    await flushLogger(this.logger);
  }

  /**
   * The Consul discovery `config` asks for: the running one while `discovery.consul` is unchanged, else a new one
   * (built, not yet watching: its client is what can fail, before a reload touches anything).
   */
  #consulFor(config: Config, previous?: Config): ConsulDiscovery | undefined {
    const consul = config.discovery.consul;
    if (!consul || this.#worker !== undefined) return undefined;
    if (this.#consul && JSON.stringify(consul) === JSON.stringify(previous?.discovery.consul)) return this.#consul;
    return new consulModule!.ConsulDiscovery(consul, this.registry, this.logger);
  }

  /** Routed services without a static list come from Consul; a replaced discovery stops its watchers. */
  #useConsul(discovery: ConsulDiscovery | undefined, config: Config, routed: Set<string>): void {
    if (this.#consul !== discovery) this.#consul?.stop();
    this.#consul = discovery;
    discovery?.watch(new Set([...routed].filter((service) => !Object.hasOwn(config.discovery.static, service))));
  }

  get consul(): ConsulDiscovery | undefined {
    return this.#consul;
  }

  /** Each TLS instance's settings by origin; an instance of a service in discovery.tls that speaks plain HTTP is warned about once. */
  #tlsByOrigin(): Map<string, UpstreamConnectTls> {
    return tlsByOrigin(this.registry, this.#upstreamTls, (instance) => {
      if (this.#plainWarned.has(instance.id)) return;
      this.#plainWarned.add(instance.id);
      this.logger.warn({ service: instance.service, instance: instance.id }, 'instance of a service in discovery.tls speaks plain HTTP: tag it tls (or meta tls=true) if it speaks TLS');
    });
  }

  #liveOrigins(): Set<string> {
    const origins = new Set<string>();
    for (const service of this.registry.services()) {
      for (const instance of this.registry.snapshot(service)!.instances) origins.add(instance.origin);
    }
    return origins;
  }
}
