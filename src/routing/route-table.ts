// routes.yaml's `routes`, compiled once per config: first match wins, in file order.
import type { IncomingHttpHeaders } from 'node:http';
import type { BreakerConfig, RouteConfig } from '../config/schema.ts';
import { resolveDotSegments } from '../listener/target.ts';
import type { ClientIdentity } from '../listener/client-cert.ts';
import { members, WeightedMembers } from './balancer.ts';

export interface RouteRequest {
  readonly method: string;
  /** lower-case, without port */
  readonly host: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** the verified client certificate (mutual TLS), if any */
  readonly clientCert?: ClientIdentity | undefined;
}

/** `match.clientCert` compiled: each list given must name the certificate. */
interface ClientCertMatch {
  readonly cn: ReadonlySet<string> | undefined;
  readonly san: ReadonlySet<string> | undefined;
}

function clientCertMatches(wanted: ClientCertMatch, identity: ClientIdentity | undefined): boolean {
  if (identity === undefined) return false;
  if (wanted.cn !== undefined && (identity.cn === undefined || !wanted.cn.has(identity.cn))) return false;
  return wanted.san === undefined || identity.sans.some((name) => wanted.san!.has(name));
}

export class CompiledRoute {
  readonly name: string;
  readonly config: RouteConfig;
  /** every service the route can send to */
  readonly services: readonly string[];
  /** the services with their weights: a sticky key splits by rendezvous, others by weighted draw */
  readonly split: WeightedMembers<string>;
  /** each try's wait for a response head: `retries.perTryTimeout`, or the route timeout shared by every try it allows */
  readonly perTryTimeout: number;
  readonly #path: string | undefined;
  readonly #prefix: string | undefined;
  readonly #host: string | undefined;
  /** `*.example.com` → `.example.com` */
  readonly #hostSuffix: string | undefined;
  readonly #methods: ReadonlySet<string> | undefined;
  readonly #caseInsensitive: boolean;
  readonly #headers: ReadonlyArray<readonly [string, string]>;
  readonly #breakers: ReadonlyMap<string, BreakerConfig> | undefined;
  readonly #clientCert: ClientCertMatch | undefined;

  /** `breakers`: per service, the breaker settings that govern its instances (RouteTable's rule) */
  constructor(config: RouteConfig, breakers?: ReadonlyMap<string, BreakerConfig>) {
    this.#breakers = breakers;
    this.name = config.name;
    this.config = config;
    const weighted = config.weighted ?? [{ service: config.service!, weight: 1 }];
    this.services = weighted.map((w) => w.service);
    this.split = new WeightedMembers(members(weighted, (w) => w.service, (w) => w.weight).map((m) => ({ ...m, item: m.item.service })));
    const { retries } = config;
    this.perTryTimeout = retries.perTryTimeout ?? Math.max(1, Math.floor(config.timeout / (retries.maxRetries + 1)));
    const { match } = config;
    this.#caseInsensitive = match.caseInsensitive;
    this.#path = this.#caseInsensitive ? match.path?.toLowerCase() : match.path;
    // A trailing slash on a prefix is a segment boundary already; keep one canonical form.
    const prefix = match.prefix !== undefined && match.prefix !== '/' ? match.prefix.replace(/\/+$/, '') : match.prefix;
    this.#prefix = this.#caseInsensitive ? prefix?.toLowerCase() : prefix;
    const host = match.host?.toLowerCase();
    this.#hostSuffix = host?.startsWith('*.') ? host.slice(1) : undefined;
    this.#host = this.#hostSuffix === undefined ? host : undefined;
    this.#methods = match.methods ? new Set(match.methods) : undefined;
    this.#headers = Object.entries(match.headers ?? {}).map(([name, value]) => [name.toLowerCase(), value] as const);
    const cert = match.clientCert;
    this.#clientCert = cert && { cn: cert.cn && new Set(cert.cn), san: cert.san && new Set(cert.san) };
  }

  /** `request.path` as RouteTable.match passes it: without `;parameters` */
  matches(request: RouteRequest): boolean {
    const path = this.#caseInsensitive ? request.path.toLowerCase() : request.path;
    if (this.#path !== undefined ? path !== this.#path : !this.#matchesPrefix(path)) return false;
    if (this.#host !== undefined && request.host !== this.#host) return false;
    if (this.#hostSuffix !== undefined && !request.host.endsWith(this.#hostSuffix)) return false;
    if (this.#methods !== undefined && !this.#methods.has(request.method)) return false;
    for (const [name, value] of this.#headers) if (request.headers[name] !== value) return false;
    return this.#clientCert === undefined || clientCertMatches(this.#clientCert, request.clientCert);
  }

  /** The breaker settings of `service`'s instances: one breaker per instance, whichever route sends to it. */
  breakerFor(service: string): BreakerConfig {
    return this.#breakers?.get(service) ?? this.config.breaker;
  }

  /**
   * The path sent upstream: with `stripPrefix`, the matched prefix is removed (never leaving it empty). The prefix
   * matched the path without its `;parameters`, so with parameters it is its segments that are removed.
   */
  upstreamPath(path: string): string {
    if (!this.config.stripPrefix || this.#prefix === undefined || this.#prefix === '/') return path;
    const end = path.includes(';') ? segmentsEnd(path, this.#prefix) : this.#prefix.length;
    const rest = path.slice(end);
    return rest === '' ? '/' : rest;
  }

  /** Segment-aware: `/api/order` matches `/api/order` and `/api/order/7`, never `/api/orders`. */
  #matchesPrefix(path: string): boolean {
    const prefix = this.#prefix!;
    if (prefix === '/') return true;
    return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47);
  }
}

/** Where the segments of `path` that `prefix` has end (the index of the slash after them, or the length). */
function segmentsEnd(path: string, prefix: string): number {
  let end = 0;
  for (let slashes = prefix.split('/').length - 1; slashes > 0; slashes--) {
    const next = path.indexOf('/', end + 1);
    end = next === -1 ? path.length : next;
  }
  return end;
}

/**
 * The path routes compare: each segment without its `;parameters` (RFC 3986 §3.3), which Tomcat and Spring strip
 * before their own routing, so `/api/admin;jsessionid=1` is matched as the `/api/admin` the instance will serve; the
 * segments left are resolved again, as those servers do (`/api/x/..;/admin` is `/api/admin` to them).
 */
function matchingPath(path: string): string {
  if (!path.includes(';')) return path;
  const stripped = path.replace(/;[^/]*/g, '');
  return /\/\.|\/\//.test(stripped) ? resolveDotSegments(stripped) : stripped;
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];
  /** per service, the breaker settings of its instances */
  readonly breakers: ReadonlyMap<string, BreakerConfig>;

  constructor(routes: readonly RouteConfig[]) {
    // An instance has one breaker, so a service shared by routes takes the settings of the first of them in file
    // order: which route happens to send first must not decide them.
    const breakers = new Map<string, BreakerConfig>();
    for (const route of routes) {
      for (const { service } of route.weighted ?? [{ service: route.service! }]) if (!breakers.has(service)) breakers.set(service, route.breaker);
    }
    this.breakers = breakers;
    this.routes = routes.map((route) => new CompiledRoute(route, breakers));
  }

  /** `request.path` is the normalised path; routes compare it without `;parameters`. */
  match(request: RouteRequest): CompiledRoute | undefined {
    const path = matchingPath(request.path);
    const compared = path === request.path ? request : { ...request, path };
    for (const route of this.routes) if (route.matches(compared)) return route;
    return undefined;
  }

  /** Every service some route can send to: what discovery must watch. */
  services(): Set<string> {
    return new Set(this.routes.flatMap((route) => route.services));
  }
}
