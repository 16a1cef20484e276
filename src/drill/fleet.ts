// What a drill runs against: the config's static instances simulated on free loopback ports (src/demo), Consul and
// Redis reached through relays the drill can cut, and a fresh gateway per scenario (so one scenario's open breakers
// do not start the next), in this process, on loopback, with routing headers on.
import { consulSchema, type Config } from '../config/schema.ts';
import { registerInConsul, type Registration } from '../demo/consul-registration.ts';
import { startDemoUpstreams, type DemoUpstreams, type InstanceControl } from '../demo/upstreams.ts';
import { Gateway } from '../gateway.ts';
import { createLogger } from '../observability/logger.ts';
import { startRelay, type Relay } from './relay.ts';

export interface FleetOptions {
  /** register the simulated instances in this Consul and discover them from it (through a relay) */
  readonly consul?: string;
}

export class DrillFleet {
  readonly config: Config;
  readonly upstreams: DemoUpstreams;
  readonly consulRelay: Relay | undefined;
  readonly redisRelay: Relay | undefined;
  /** why the config's own Consul or Redis is not drilled, for the report */
  readonly notes: readonly string[];
  readonly #registration: Registration | undefined;

  private constructor(config: Config, upstreams: DemoUpstreams, relays: { consul?: Relay; redis?: Relay }, registration: Registration | undefined, notes: string[]) {
    this.config = config;
    this.upstreams = upstreams;
    this.consulRelay = relays.consul;
    this.redisRelay = relays.redis;
    this.#registration = registration;
    this.notes = notes;
  }

  static async start(source: Config, options: FleetOptions = {}): Promise<DrillFleet> {
    const notes: string[] = [];
    const upstreams = await startDemoUpstreams(source, { freePorts: true });
    const relays: { consul?: Relay; redis?: Relay } = {};
    let registration: Registration | undefined;
    try {
      let discovery: Config['discovery'] = { static: movedStatic(source, upstreams) };
      if (options.consul !== undefined) {
        const consul = new URL(/^https?:\/\//.test(options.consul) ? options.consul : `http://${options.consul}`);
        relays.consul = await startRelay(consul.hostname, Number(consul.port || 8500));
        registration = await registerInConsul(options.consul, upstreams.instances);
        discovery = { consul: consulSchema.parse({ address: `http://127.0.0.1:${relays.consul.port}` }), static: {} };
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
      };
      return new DrillFleet({ ...source, gateway, discovery, redis }, upstreams, relays, registration, notes);
    } catch (err) {
      await Promise.allSettled([registration?.deregister(), relays.consul?.close(), relays.redis?.close(), upstreams.close()]);
      throw err;
    }
  }

  /** A gateway of its own for one scenario (its log is silent: the drill reports what clients saw). */
  startGateway(): Promise<Gateway> {
    return Gateway.start(this.config, { logger: createLogger({ level: 'silent' }) });
  }

  /** The simulated instance that a gateway's instance id names (ids differ between static and Consul discovery). */
  controlOf(gateway: Gateway, instanceId: string): InstanceControl | undefined {
    for (const service of gateway.registry.services()) {
      const instance = gateway.registry.snapshot(service)!.instances.find((candidate) => candidate.id === instanceId);
      if (instance !== undefined) return this.upstreams.controls.find((control) => control.instance.port === instance.port);
    }
    return undefined;
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.#registration?.deregister(), this.consulRelay?.close(), this.redisRelay?.close()]);
    await this.upstreams.close();
  }
}

/** The static lists with each instance at the address its simulation listens on (same order as staticSpecs). */
function movedStatic(config: Config, upstreams: DemoUpstreams): Config['discovery']['static'] {
  let index = 0;
  const moved: Config['discovery']['static'] = {};
  for (const [service, entries] of Object.entries(config.discovery.static)) {
    moved[service] = entries.map((entry) => {
      const instance = upstreams.instances[index++]!;
      return { ...entry, address: { host: instance.host, port: instance.port } };
    });
  }
  return moved;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || host.startsWith('127.');
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
