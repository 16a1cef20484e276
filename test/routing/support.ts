// Shared setup for the locality, stickiness, weighted-route and explain suites: a real gateway on loopback
// in front of real upstream instances spread over a two-region topology, and a keep-alive client.
import type { IncomingHttpHeaders } from 'node:http';
import { Pool } from 'undici';
import type { ConfigInput } from '../../src/config/schema.ts';
import { within, type GatewayInput, type RouteInput } from '../support/http.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

export type { GatewayInput, RouteInput };

export const TOPOLOGY = {
  'cn-east': { shanghai: ['sh-a', 'sh-b'], hangzhou: ['hz-a'] },
  'cn-north': { beijing: ['bj-a'] },
} as const;

export type Zone = 'sh-a' | 'sh-b' | 'hz-a' | 'bj-a';

/** How many instances a service runs in each zone. */
export type ZoneLayout = Partial<Record<Zone, number>>;

export const DEFAULT_LAYOUT: ZoneLayout = { 'sh-a': 2, 'sh-b': 2, 'hz-a': 1, 'bj-a': 2 };

/** `app/sh-b-2`: the explicit static id of the second `app` instance in sh-b (also its upstream's name). */
export function instanceId(service: string, zone: Zone, ordinal: number): string {
  return `${service}/${zone}-${ordinal}`;
}

/** The instance ids of a layout, zone by zone, optionally only those of `zones`. */
export function layoutIds(service: string, layout: ZoneLayout, zones?: readonly Zone[]): string[] {
  return Object.entries(layout).flatMap(([zone, count]) =>
    zones !== undefined && !zones.includes(zone as Zone)
      ? []
      : Array.from({ length: count }, (_, i) => instanceId(service, zone as Zone, i + 1)),
  );
}

/** Everything that locates an instance in the static registry: its id, zone and the upstream it fronts. */
interface Placement {
  readonly service: string;
  readonly zone: Zone;
  readonly id: string;
}

function placements(services: Readonly<Record<string, ZoneLayout>>): Placement[] {
  return Object.entries(services).flatMap(([service, layout]) =>
    Object.entries(layout).flatMap(([zone, count]) =>
      Array.from({ length: count }, (_, i) => ({ service, zone: zone as Zone, id: instanceId(service, zone as Zone, i + 1) })),
    ),
  );
}

/**
 * A whole routes.yaml (as JSON, which is YAML) over `TOPOLOGY`, gateway zone sh-a, routing headers on.
 * `addresses` maps each instance id to the `host:port` it is registered at; `unhealthy` instances are
 * registered with `healthy: false`.
 */
export function zonedConfigYaml(options: {
  services: Readonly<Record<string, ZoneLayout>>;
  addresses: ReadonlyMap<string, string>;
  routes: readonly RouteInput[];
  gateway?: GatewayInput;
  unhealthy?: readonly string[];
}): string {
  const staticServices: Record<string, { id: string; address: string; zone: string; healthy: boolean }[]> = {};
  for (const { service, zone, id } of placements(options.services)) {
    const healthy = !options.unhealthy?.includes(id);
    (staticServices[service] ??= []).push({ id, address: options.addresses.get(id)!, zone, healthy });
  }
  const config: ConfigInput = {
    gateway: { zone: 'sh-a', routingHeaders: true, drainTimeout: '1s', ...options.gateway },
    topology: TOPOLOGY as unknown as ConfigInput['topology'],
    discovery: { static: staticServices },
    routes: [...options.routes],
  };
  return JSON.stringify(config, null, 2);
}

export interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly text: string;
  /** X-Zonegate-Upstream: the instance id that served, '' when the gateway answered itself */
  readonly upstream: string;
  /** X-Zonegate-Tier */
  readonly tier: string;
  /** X-Zonegate-Route */
  readonly route: string;
}

export interface RequestOptions {
  readonly path?: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
}

/** A keep-alive client for one gateway. */
export class GatewayClient {
  readonly #pool: Pool;

  constructor(url: string, connections = 16) {
    this.#pool = new Pool(url, { connections, pipelining: 1 });
  }

  async request(options: RequestOptions = {}): Promise<Reply> {
    const response = await this.#pool.request({
      path: options.path ?? '/',
      method: (options.method ?? 'GET') as 'GET',
      headers: options.headers,
      body: options.body,
    });
    const text = await response.body.text();
    const header = (name: string): string => {
      const value = response.headers[name];
      return typeof value === 'string' ? value : '';
    };
    return {
      status: response.statusCode,
      headers: response.headers as IncomingHttpHeaders,
      text,
      upstream: header('x-zonegate-upstream'),
      tier: header('x-zonegate-tier'),
      route: header('x-zonegate-route'),
    };
  }

  /** `count` requests, `concurrency` at a time; the replies come back in request order. */
  async many(count: number, optionsOf: (index: number) => RequestOptions, concurrency = 16): Promise<Reply[]> {
    const replies = new Array<Reply>(count);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < count) {
        const index = next++;
        replies[index] = await this.request(optionsOf(index));
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
    return replies;
  }

  /** One request after another, so that no two are in flight together (what P2C sees as an idle tier). */
  async sequential(count: number, optionsOf: (index: number) => RequestOptions): Promise<Reply[]> {
    return this.many(count, optionsOf, 1);
  }

  close(): Promise<void> {
    return this.#pool.close();
  }
}

export interface ZonedGateway {
  /** the routes.yaml text the gateway runs */
  readonly yaml: string;
  readonly gateway: TestGateway['gateway'];
  readonly log: TestGateway['log'];
  readonly url: string;
  readonly client: GatewayClient;
  /** the upstream behind each instance id */
  readonly upstreams: ReadonlyMap<string, TestUpstream>;
  /** instance ids of `service` (default `app`), optionally only those in `zones` */
  ids(zones?: readonly Zone[], service?: string): string[];
  /** flips discovery health of every listed instance of `service` (default `app`) */
  setHealthy(ids: readonly string[], healthy: boolean, service?: string): void;
  /** requests the upstreams received, summed over every instance */
  upstreamRequestCount(): number;
  close(): Promise<void>;
}

export interface ZonedGatewayOptions {
  /** service → instances per zone; default `{ app: DEFAULT_LAYOUT }` */
  readonly services?: Readonly<Record<string, ZoneLayout>>;
  /** default: one route `app` for every path to service `app`, with `route` merged in */
  readonly routes?: readonly RouteInput[];
  readonly route?: Partial<RouteInput>;
  readonly gateway?: GatewayInput;
}

/** Starts one upstream per instance and a gateway in front of them; `close` stops everything it started. */
export async function startZonedGateway(options: ZonedGatewayOptions = {}): Promise<ZonedGateway> {
  const services = options.services ?? { app: DEFAULT_LAYOUT };
  const started = await Promise.all(placements(services).map(async ({ id }) => [id, await startUpstream(id)] as const));
  const upstreams = new Map(started);
  const routes = options.routes ?? [{ name: 'app', match: { prefix: '/' }, service: 'app', ...options.route } as RouteInput];
  const yaml = zonedConfigYaml({
    services,
    addresses: new Map(started.map(([id, upstream]) => [id, upstream.address])),
    routes,
    gateway: options.gateway,
  });
  const gateway = await startGateway(yaml);
  const client = new GatewayClient(gateway.url);
  return {
    yaml,
    gateway: gateway.gateway,
    log: gateway.log,
    url: gateway.url,
    client,
    upstreams,
    ids: (zones, service = 'app') => layoutIds(service, services[service] ?? {}, zones),
    setHealthy(ids, healthy, service = 'app') {
      for (const id of ids) {
        if (gateway.gateway.registry.setHealthy(service, id, healthy) === undefined) throw new Error(`no instance ${id} of ${service}`);
      }
    },
    upstreamRequestCount: () => [...upstreams.values()].reduce((sum, upstream) => sum + upstream.requests.length, 0),
    async close() {
      await client.close();
      await gateway.close();
      await Promise.all([...upstreams.values()].map((upstream) => upstream.close()));
    },
  };
}

/** Which instance served each reply, counted. */
export function tally(replies: readonly Reply[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const reply of replies) counts.set(reply.upstream, (counts.get(reply.upstream) ?? 0) + 1);
  return counts;
}

/** The distinct values of `pick` over the replies, sorted. */
export function distinct(replies: readonly Reply[], pick: (reply: Reply) => string): string[] {
  return [...new Set(replies.map(pick))].sort();
}

/** The access log line of the request whose response carried `reply`'s X-Request-ID. */
export function accessLineOf(log: ZonedGateway['log'], reply: Reply): Promise<Record<string, unknown>> {
  const requestId = reply.headers['x-request-id'];
  return within(
    log.waitFor((line) => line.msg === 'access' && line.reqId === requestId),
    5000,
    `the access log line of request ${String(requestId)}`,
  );
}
