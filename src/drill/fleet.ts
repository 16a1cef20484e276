// What a drill runs against. Its own fleet (LocalFleet): the config's static instances simulated on free loopback
// ports (src/demo), Consul and Redis reached through relays the drill can cut, and a fresh gateway per scenario (so
// one scenario's open breakers do not start the next), in this process, with routing headers on. Or a running
// `zonegate demo` (demo-fleet.ts), driven through its control listener.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { isLoopback } from '../config/checks.ts';
import { consulSchema, type Config } from '../config/schema.ts';
import type { InstanceSpec } from '../discovery/instance.ts';
import { registerInConsul, type Registration } from '../demo/consul-registration.ts';
import { startDemoUpstreams, type DemoUpstreams, type InstanceControl } from '../demo/upstreams.ts';
import { Gateway } from '../gateway.ts';
import { createLogger } from '../observability/logger.ts';
import type { AdminEndpoint } from './admin-client.ts';
import { startRelay, type Relay } from './relay.ts';

/** A simulated instance as the drill drives it. */
export interface DrillInstance {
  readonly id: string;
  readonly service: string;
  readonly zone: string;
  readonly port: number;
  kill(): Promise<void>;
  hang(): Promise<void>;
  fail(percent: number, status: number): Promise<void>;
  restore(): Promise<void>;
  /** when it received requests since `since` (both in ms since the epoch) */
  arrivals(since: number): Promise<number[]>;
}

/** The gateway one scenario runs against. */
export interface FleetGateway {
  /** the proxy listener, http://127.0.0.1:port */
  readonly origin: string;
  readonly port: number;
  readonly admin: AdminEndpoint;
  /** the scenario is over: a gateway of its own stops */
  release(): Promise<void>;
}

export interface Fleet {
  readonly instances: readonly DrillInstance[];
  readonly consulRelay: Relay | undefined;
  readonly redisRelay: Relay | undefined;
  /** what is not drilled and why, for the report */
  readonly notes: readonly string[];
  gateway(): Promise<FleetGateway>;
  /** the first route's exact path or prefix: what the load sends unless told otherwise */
  firstRoutePath(): Promise<string>;
  close(): Promise<void>;
}

function localInstance(control: InstanceControl): DrillInstance {
  const { id, service, zone, port } = control.instance;
  return {
    id,
    service,
    zone,
    port,
    kill: () => control.kill(),
    hang: async () => control.hang(),
    fail: async (percent, status) => control.fail(percent, status),
    restore: () => control.restore(),
    arrivals: async (since) => control.arrivals.filter((at) => at >= since),
  };
}

export interface FleetOptions {
  /** register the simulated instances in this Consul and discover them from it (through a relay) */
  readonly consul?: string;
}

export class LocalFleet implements Fleet {
  readonly config: Config;
  readonly upstreams: DemoUpstreams;
  readonly instances: readonly DrillInstance[];
  readonly consulRelay: Relay | undefined;
  readonly redisRelay: Relay | undefined;
  /** why the config's own Consul or Redis is not drilled, for the report */
  readonly notes: readonly string[];
  readonly #registration: Registration | undefined;

  private constructor(config: Config, upstreams: DemoUpstreams, relays: { consul?: Relay; redis?: Relay }, registration: Registration | undefined, notes: string[]) {
    this.config = config;
    this.upstreams = upstreams;
    this.instances = upstreams.controls.map(localInstance);
    this.consulRelay = relays.consul;
    this.redisRelay = relays.redis;
    this.#registration = registration;
    this.notes = notes;
  }

  static async start(source: Config, options: FleetOptions = {}): Promise<LocalFleet> {
    const notes: string[] = [];
    const upstreams = await startDemoUpstreams(source, { freePorts: true });
    const relays: { consul?: Relay; redis?: Relay } = {};
    let registration: Registration | undefined;
    try {
      // the simulated instances speak plain HTTP: no TLS to them
      let discovery: Config['discovery'] = { static: movedStatic(source, upstreams), tls: {} };
      if (options.consul !== undefined) {
        const consul = new URL(/^https?:\/\//.test(options.consul) ? options.consul : `http://${options.consul}`);
        relays.consul = await startRelay(consul.hostname, Number(consul.port || 8500));
        registration = await registerInConsul(options.consul, upstreams.instances);
        if (!(await passingInConsul(consul.origin, upstreams.instances))) notes.push(`not every simulated instance passed its Consul check within ${CONSUL_WAIT_MS / 1000}s`);
        discovery = { consul: consulSchema.parse({ address: `http://127.0.0.1:${relays.consul.port}` }), static: {}, tls: {} };
      } else if (source.discovery.consul) {
        notes.push('discovery.consul is not drilled (its instances are not simulated): give --consul to run on Consul');
      }
      let redis = source.redis;
      const target = redis === undefined ? undefined : redisTarget(redis.url);
      if (redis !== undefined && target !== undefined && redis.cluster === undefined && isLoopback(target.host)) {
        relays.redis = await startRelay(target.host, target.port);
        // buckets of their own: the drill's load must not spend anyone's tokens
        redis = { ...redis, url: target.through(relays.redis.port), keyPrefix: `${redis.keyPrefix}-drill` };
      } else if (redis !== undefined && (redis.url !== '' || redis.cluster !== undefined)) {
        notes.push('redis-unavailable needs redis.url as redis://host:port on this host (no TLS, socket or cluster)');
        redis = undefined;
      }
      const gateway = {
        ...source.gateway,
        listen: { host: '127.0.0.1', port: 0 },
        admin: { host: '127.0.0.1', port: 0 },
        routingHeaders: true,
        // the load speaks plain HTTP/1.1 to the plain listener
        tls: undefined,
      };
      return new LocalFleet({ ...source, gateway, discovery, redis }, upstreams, relays, registration, notes);
    } catch (err) {
      await Promise.allSettled([registration?.deregister(), relays.consul?.close(), relays.redis?.close(), upstreams.close()]);
      throw err;
    }
  }

  /** A gateway of its own for one scenario (its log is silent: the drill reports what clients saw). */
  async gateway(): Promise<FleetGateway> {
    const gateway = await Gateway.start(this.config, { logger: createLogger({ level: 'silent' }) });
    return {
      origin: `http://127.0.0.1:${gateway.address.port}`,
      port: gateway.address.port,
      admin: { origin: `http://127.0.0.1:${gateway.adminAddress.port}`, token: this.config.gateway.adminToken },
      release: () => gateway.stop(),
    };
  }

  async firstRoutePath(): Promise<string> {
    const { match } = this.config.routes[0]!;
    return match.path ?? match.prefix ?? '/';
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#registration?.deregister(), this.consulRelay?.close(), this.redisRelay?.close()]);
    await this.upstreams.close();
  }
}

/** how long the drill waits for Consul to run the simulated instances' first checks */
const CONSUL_WAIT_MS = 15_000;
const passingAnswer = z.array(z.unknown());

/** Whether Consul says every simulated instance passes its check (it runs them every 2 s), within CONSUL_WAIT_MS. */
async function passingInConsul(origin: string, instances: readonly InstanceSpec[]): Promise<boolean> {
  const services = Map.groupBy(instances, (instance) => instance.service);
  for (const deadline = performance.now() + CONSUL_WAIT_MS; performance.now() < deadline; await sleep(250)) {
    const counts = await Promise.all(
      [...services].map(async ([service, registered]) => {
        const res = await fetch(`${origin}/v1/health/service/${encodeURIComponent(service)}?passing=1`, { signal: AbortSignal.timeout(5000) });
        return res.ok && passingAnswer.parse(await res.json()).length >= registered.length;
      }),
    );
    if (counts.every(Boolean)) return true;
  }
  return false;
}

/** The static lists with each instance at the address its simulation listens on (same order as staticSpecs). */
function movedStatic(config: Config, upstreams: DemoUpstreams): Config['discovery']['static'] {
  let index = 0;
  const moved: Config['discovery']['static'] = {};
  for (const [service, entries] of Object.entries(config.discovery.static)) {
    moved[service] = entries.map((entry) => {
      const instance = upstreams.instances[index++]!;
      return { ...entry, address: { host: instance.host, port: instance.port }, tls: undefined };
    });
  }
  return moved;
}


/** A plain redis:// URL, host:port or port, and how to write it through a relay; undefined for anything else. */
function redisTarget(url: string): { host: string; port: number; through(port: number): string } | undefined {
  if (/^\d{1,5}$/.test(url)) return { host: '127.0.0.1', port: Number(url), through: (port) => String(port) };
  if (/^[^\s/:]+:\d{1,5}$/.test(url)) {
    const [host, port] = url.split(':');
    return { host: host!, port: Number(port), through: (relay) => `127.0.0.1:${relay}` };
  }
  if (!url.startsWith('redis://')) return undefined;
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    through(relay) {
      const moved = new URL(url);
      moved.hostname = '127.0.0.1';
      moved.port = String(relay);
      return moved.toString();
    },
  };
}
