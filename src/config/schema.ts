// The single source of truth for routes.yaml: every config type in zonegate is inferred from here,
// and `zonegate schema` emits it as JSON Schema for editors.
import { isIP } from 'node:net';
import { z } from 'zod';
import { consulAddressProblem, redisAddressProblem } from './endpoints.ts';

const DURATION = /^(\d+)(?:\.(\d+))?(ms|s|m|h)$/;
const DURATION_MS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n };
const RATE = /^(\d+(?:\.\d+)?)\/(s|m|h)$/;
const RATE_WINDOW_S: Record<string, number> = { s: 1, m: 60, h: 3600 };

export interface ParsedDuration {
  /** whole milliseconds, rounded down */
  readonly ms: number;
  /** the text named a fraction of a millisecond (`1.5ms`, `0.0001s`) */
  readonly fractional: boolean;
}

/**
 * Parses `250ms`, `5s`, `1.5m`, `2h`; undefined when malformed. Decimal arithmetic, not floating point:
 * `1.001s` is exactly 1001 ms, where `1.001 * 1000` is 1000.9999999999999, which Node's servers refuse.
 */
export function parseDuration(text: string): ParsedDuration | undefined {
  const m = DURATION.exec(text);
  if (!m) return undefined;
  const fraction = m[2] ?? '';
  const scaled = BigInt(m[1]! + fraction) * DURATION_MS[m[3]!]!;
  const divisor = 10n ** BigInt(fraction.length);
  return { ms: Number(scaled / divisor), fractional: scaled % divisor !== 0n };
}

/** Node's timers wait at most 2^31 - 1 ms (~24.8 days); a longer one fires after 1 ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A duration in milliseconds; `minMs` 1 for timeouts, where 0 would fail every request rather than mean "no limit". */
function durationAtLeast(minMs: 0 | 1) {
  // a bare number is most likely a duration without its unit: say so, rather than "quote it"
  const text = z.string({ error: (issue) => (issue.input === undefined ? undefined : 'expected a duration with a unit, like 250ms, 5s or 1m') });
  return text.transform((text, ctx) => {
    const parsed = parseDuration(text);
    if (parsed === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a duration like 250ms, 5s or 1m, got "${text}"` });
      return z.NEVER;
    }
    const { ms, fractional } = parsed;
    // timers and Node's server timeouts take whole milliseconds; rounding silently would change what was written
    if (fractional) {
      const nearest = ms < minMs ? `${minMs}ms` : `${ms}ms or ${ms + 1}ms`;
      ctx.addIssue({ code: 'custom', message: `expected a whole number of milliseconds, got "${text}" (write ${nearest})` });
      return z.NEVER;
    }
    if (ms < minMs) {
      ctx.addIssue({ code: 'custom', message: `expected a duration of at least 1ms, got "${text}" (a timeout of 0 would fail every request)` });
      return z.NEVER;
    }
    if (ms > MAX_TIMER_MS) {
      ctx.addIssue({ code: 'custom', message: `expected a duration of at most 596h (the longest a timer can wait), got "${text}"` });
      return z.NEVER;
    }
    return ms;
  });
}

/** may be 0 (a backoff, a drain that closes at once) */
const duration = durationAtLeast(0);
/** a timeout or interval: at least 1 ms */
const timeout = durationAtLeast(1);

export interface Rate {
  /** tokens per second */
  readonly perSecond: number;
  /** the window the rate was written in, in seconds (1, 60, 3600): what RateLimit-Policy's w= reports */
  readonly windowSeconds: number;
  readonly text: string;
}

const rate = z.string().transform((text, ctx): Rate => {
  const m = RATE.exec(text);
  // a few hundred digits make Infinity, which no bucket can count with
  if (!m || !(Number(m[1]) > 0 && Number.isFinite(Number(m[1])))) {
    ctx.addIssue({ code: 'custom', message: `expected a rate like 100/s or 6000/m, got "${text}"` });
    return z.NEVER;
  }
  const windowSeconds = RATE_WINDOW_S[m[2]!]!;
  return { perSecond: Number(m[1]) / windowSeconds, windowSeconds, text };
});

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** `host:port`, `[::1]:port`; the host may be empty (`:8080`) for all interfaces. */
export function parseHostPort(text: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]*)):(\d{1,5})$/.exec(text);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  return { host: m[1] ?? m[2] ?? '', port };
}

/** `gateway.listen` / `admin`: a bare port is the likeliest mistake, so the message spells out what to write instead. */
function listenHint(port: unknown): string {
  return ` (write ":${String(port)}" or "0.0.0.0:${String(port)}" for every interface, "127.0.0.1:${String(port)}" for this host only)`;
}

function hostPortOf(example: string, hint?: (port: unknown) => string) {
  const bare = (input: unknown): boolean => /^\d{1,5}$/.test(String(input));
  const text = z.string({
    error: (issue) => (hint && typeof issue.input === 'number' && bare(issue.input) ? `expected host:port, got ${issue.input}${hint(issue.input)}` : undefined),
  });
  return text.transform((text, ctx): HostPort => {
    const parsed = parseHostPort(text);
    if (!parsed) {
      const message = `expected host:port (e.g. ${example}), got "${text}"${hint && bare(text) ? hint(text) : ''}`;
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return parsed;
  });
}

/** where zonegate listens */
const listenAddress = hostPortOf('0.0.0.0:8080', listenHint);
/** where an upstream instance is */
const hostPort = hostPortOf('127.0.0.1:9001');

/** An IP address, or a CIDR block whose prefix fits the address family. */
function isAddressOrCidr(text: string): boolean {
  const [address = '', prefix, ...rest] = text.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

const cidr = z.string().refine(isAddressOrCidr, { message: 'expected an IP address or CIDR like 10.0.0.0/8 or fd00::/8' });

const zoneName = z.string().min(1);

const limits = z
  .strictObject({
    maxHeaderBytes: z.number().int().min(1024).default(16384),
    headersTimeout: timeout.prefault('15s'),
    requestTimeout: timeout.prefault('60s'),
    maxBodyBytes: z.number().int().min(0).default(10 * 1024 * 1024),
    /** idle keep-alive connections from clients are closed after this */
    keepAliveTimeout: timeout.prefault('65s'),
    maxConnections: z.number().int().positive().optional(),
  })
  // Node refuses to start a server otherwise: the whole request cannot have less time than its head.
  .superRefine((l, ctx) => {
    if (l.headersTimeout <= l.requestTimeout) return;
    const message = `headersTimeout (${l.headersTimeout} ms) must not be longer than requestTimeout (${l.requestTimeout} ms; defaults: 15s and 60s)`;
    ctx.addIssue({ code: 'custom', message, path: ['headersTimeout'] });
  });

const upstreamPool = z.strictObject({
  connectTimeout: timeout.prefault('2s'),
  /** per upstream instance; undici's default is unlimited */
  maxConnections: z.number().int().positive().default(128),
  keepAliveTimeout: timeout.prefault('4s'),
  allowH2: z.boolean().default(false),
});

/** A file the gateway reads (PEM); a relative path is read from the working directory, as `snapshotFile` is. */
const pemFile = z.string().min(1);

/** A TLS server name: `api.example.com`, or `*.example.com` for any one label in its place (RFC 6125 §6.4.3). */
const serverName = z.string().superRefine((text, ctx) => {
  const name = text.startsWith('*.') ? text.slice(2) : text;
  if (!HOST_NAME.test(name) || isIP(name) !== 0) {
    ctx.addIssue({ code: 'custom', message: `expected a server name like api.example.com or *.example.com, got "${text}"` });
  }
});

const sniCertificate = z.strictObject({
  hosts: z.array(serverName).min(1).describe('Server names (SNI) this certificate answers: exact names, or *.example.com for one label'),
  cert: pemFile.describe('PEM file with the certificate chain, leaf first'),
  key: pemFile.describe('PEM file with the private key of the certificate'),
});

export const listenerTlsSchema = z
  .strictObject({
    listen: listenAddress.prefault('0.0.0.0:8443').describe('Address of the HTTPS listener'),
    cert: pemFile.optional().describe('PEM certificate chain served when no sni entry names the requested host (the default certificate)'),
    key: pemFile.optional().describe('PEM private key of cert'),
    sni: z.array(sniCertificate).default([]).describe('Certificates chosen by the server name the client asks for; exact names win over wildcards'),
    clientCa: pemFile.optional().describe('PEM bundle of CAs that sign client certificates: turns on mutual TLS for this listener'),
    clientCert: z
      .enum(['require', 'optional'])
      .default('require')
      .describe('With clientCa: require refuses a handshake without a valid client certificate; optional verifies one if presented'),
    minVersion: z.enum(['TLSv1.2', 'TLSv1.3']).default('TLSv1.2').describe('Oldest TLS version accepted'),
    h2: z.boolean().default(true).describe('Offer HTTP/2 (ALPN h2) beside HTTP/1.1'),
    maxConcurrentStreams: z.number().int().min(1).max(1000).default(100).describe('HTTP/2 streams one connection may have open at once'),
    redirectPlain: z
      .boolean()
      .default(false)
      .describe('The plain listener (gateway.listen) answers every request with a 308 redirect to this HTTPS listener'),
  })
  .superRefine((tls, ctx) => {
    if ((tls.cert === undefined) !== (tls.key === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'cert and key go together: set both or neither', path: [tls.cert === undefined ? 'cert' : 'key'] });
    }
    if (tls.cert === undefined && tls.sni.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'an HTTPS listener needs a certificate: set cert and key, or at least one sni entry' });
    }
  });

const gateway = z.strictObject({
  listen: listenAddress.prefault('0.0.0.0:8080'),
  admin: listenAddress.prefault('127.0.0.1:9901'),
  adminToken: z.string().default(''),
  zone: zoneName,
  trustedProxies: z.array(cidr).default([]),
  trustRegionHeader: z.enum(['any', 'peers', 'never']).default('any'),
  routingHeaders: z.boolean().default(false),
  /** nginx ignores header names with `_` by default; Envoy's edge guide rejects them */
  underscoreHeaders: z.enum(['drop', 'reject', 'allow']).default('drop'),
  /** `%2F` / `%5C` in a path: made slashes before routing and forwarding (Envoy's edge advice), kept as data, or 400 */
  escapedSlashes: z.enum(['unescape', 'keep', 'reject']).default('unescape'),
  drainTimeout: duration.prefault('10s'),
  limits: limits.prefault({}),
  upstream: upstreamPool.prefault({}),
  h2c: z
    .boolean()
    .default(false)
    .describe('The plain listener also serves HTTP/2 to clients that start with its preface (h2c with prior knowledge); no Upgrade: h2c'),
  tls: listenerTlsSchema.optional().describe('HTTPS listener (HTTP/1.1 and HTTP/2) beside the plain one; see docs/tls.md'),
});

const topology = z.record(z.string().min(1), z.record(z.string().min(1), z.array(zoneName).min(1)));

/** How the gateway speaks TLS to a service's instances; verification is always on. */
const upstreamTls = z
  .strictObject({
    ca: pemFile.optional().describe("PEM bundle of the CAs that sign the instances' certificates; default: the system's CAs"),
    servername: z.string().min(1).optional().describe("Name the instance's certificate must carry, also sent as SNI; default: the instance's host"),
    cert: pemFile.optional().describe('PEM client certificate the gateway presents to the instance (mutual TLS)'),
    key: pemFile.optional().describe('PEM private key of cert'),
    h2: z.boolean().default(false).describe('Offer HTTP/2 to the instances (ALPN); they may still answer HTTP/1.1'),
  })
  .superRefine((tls, ctx) => {
    if ((tls.cert === undefined) === (tls.key === undefined)) return;
    ctx.addIssue({ code: 'custom', message: 'cert and key go together: set both or neither', path: [tls.cert === undefined ? 'cert' : 'key'] });
  });

const staticInstance = z.strictObject({
  address: hostPort,
  zone: zoneName,
  weight: z.number().positive().default(1),
  id: z.string().min(1).optional(),
  tags: z.array(z.string()).default([]),
  meta: z.record(z.string(), z.string()).default({}),
  healthy: z.boolean().default(true),
  tls: z
    .union([z.literal(true), upstreamTls])
    .optional()
    .describe("The instance speaks TLS: true (with discovery.tls's settings for its service, else the defaults), or this instance's own settings"),
});

export const consulSchema = z.strictObject({
  /** `http(s)://host:port` or `host:port`; empty → $CONSUL_HTTP_ADDR, then http://127.0.0.1:8500 */
  address: z
    .string()
    .superRefine((text, ctx) => {
      const problem = text === '' ? undefined : consulAddressProblem(text);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default(''),
  /** empty → $CONSUL_HTTP_TOKEN */
  token: z.string().default(''),
  datacenters: z.array(z.string().min(1)).min(1).default(['dc1']),
  zoneMeta: z.string().min(1).default('zone'),
  acceptWarning: z.boolean().default(false),
  stale: z.boolean().default(true),
  wait: timeout.prefault('5m'),
  maxDropRatio: z.number().min(0).max(1).default(0.5),
  snapshotFile: z.string().optional(),
});

const discovery = z.strictObject({
  consul: consulSchema.optional(),
  static: z.record(z.string().min(1), z.array(staticInstance)).default({}),
  tls: z
    .record(z.string().min(1), upstreamTls)
    .default({})
    .describe('Per service, how to speak TLS to its instances; every static instance of a listed service speaks TLS, and Consul instances tagged tls (or with meta tls=true)'),
});

const redisAddress = z.string().superRefine((text, ctx) => {
  // empty: no Redis (`url: ${REDIS_URL:-}`); ioredis itself would read it as localhost:6379
  const problem = text === '' ? undefined : redisAddressProblem(text);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const redis = z.strictObject({
  url: redisAddress.default(''),
  cluster: z.array(z.string().min(1).pipe(redisAddress)).optional(),
  keyPrefix: z.string().min(1).default('zonegate'),
  onError: z.enum(['local', 'allow', 'deny']).default('local'),
  commandTimeout: timeout.prefault('50ms'),
  gatewayCount: z.number().int().positive().default(1),
  /**
   * one script call per event-loop turn for every bucket it asked for (single node); false behind a proxy that
   * routes a script by its first key (twemproxy, Envoy's redis_proxy), where the other buckets would land on the wrong shard
   */
  batchDecisions: z.boolean().default(true),
});

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected an HTTP header name');

const HOST_NAME = /^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$/;

/**
 * Why `match.host` could never match a request, or undefined. Requests are matched on the Host header's host,
 * lower-cased and without its port (an IPv6 literal keeps its brackets); `*.example.com` matches any host under it.
 */
export function hostMatchProblem(text: string): string | undefined {
  const expected = `expected a host name like api.example.com or a wildcard like *.example.com, got "${text}"`;
  if (isIP(text) === 6) return `${expected} (write an IPv6 address in brackets: "[${text}]")`;
  const port = /^(\[[^\]]*\]|[^:]*):(\d*)$/.exec(text);
  if (port) return `${expected} (requests are matched on the host without its port, so this never matches: write "${port[1]}")`;
  const bracketed = /^\[(.*)\]$/.exec(text);
  if (bracketed) return isIP(bracketed[1]!) === 6 ? undefined : expected;
  if (text === '*') return `${expected} (leave host out to match every host)`;
  const name = text.startsWith('*.') ? text.slice(2) : text;
  if (HOST_NAME.test(name)) return undefined;
  return name.includes('*') ? `${expected} (a wildcard is only allowed as the first label, "*.")` : expected;
}

const hostMatch = z.string().superRefine((text, ctx) => {
  const problem = hostMatchProblem(text);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const match = z
  .strictObject({
    prefix: z.string().startsWith('/').optional(),
    path: z.string().startsWith('/').optional(),
    host: hostMatch.optional(),
    methods: z.array(z.string().regex(/^[A-Z]+$/, 'expected an upper-case HTTP method')).min(1).optional(),
    headers: z.record(headerName, z.string()).optional(),
    clientCert: z
      .strictObject({
        cn: z.array(z.string().min(1)).min(1).optional().describe("The verified client certificate's subject common name is one of these"),
        san: z.array(z.string().min(1)).min(1).optional().describe('One of its DNS or URI subject alternative names (a SPIFFE id, say) is one of these'),
      })
      .optional()
      .describe('Only requests with a client certificate verified by gateway.tls.clientCa (mutual TLS); {} for any such certificate'),
  })
  .refine((m) => (m.prefix === undefined) !== (m.path === undefined), {
    message: 'match needs exactly one of prefix or path',
  });

const retryCondition = z.union([
  z.enum(['connect-failure', 'reset', 'timeout']),
  z.literal(500),
  z.literal(502),
  z.literal(503),
  z.literal(504),
]);

const retries = z.strictObject({
  attempts: z.number().int().min(0).max(10).default(2),
  perTryTimeout: timeout.optional(),
  backoff: duration.prefault('25ms'),
  on: z.array(retryCondition).default(['connect-failure', 'reset', 502, 503, 504]),
  bufferBodyBytes: z.number().int().min(0).default(64 * 1024),
});

const sticky = z
  .strictObject({
    header: headerName.optional(),
    cookie: z.string().min(1).optional(),
    query: z.string().min(1).optional(),
  })
  .refine((s) => [s.header, s.cookie, s.query].filter((v) => v !== undefined).length === 1, {
    message: 'sticky needs exactly one of header, cookie or query',
  });

const rateLimitKey = z.string().regex(/^(ip|route|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, 'expected ip, route or header:<name>');

const rateLimit = z.strictObject({
  key: rateLimitKey.default('ip'),
  rate,
  /** bucket capacity; absent → `rateLimitBurst` (one second of rate, at least 1) */
  burst: z.number().positive().optional(),
  cost: z.number().positive().default(1),
});

const breaker = z.strictObject({
  volumeThreshold: z.number().int().min(1).default(10),
  errorThresholdPercentage: z.number().min(1).max(100).default(50),
  resetTimeout: timeout.prefault('10s'),
  rollingCountTimeout: timeout.prefault('10s'),
  maxEjectionPercent: z.number().min(0).max(100).default(50),
  failOn500: z.boolean().default(false),
});

const fallback = z
  .strictObject({
    status: z.number().int().min(200).max(599).default(503),
    json: z.unknown().optional(),
    body: z.string().optional(),
    headers: z.record(headerName, z.string()).default({}),
  })
  .refine((f) => f.json === undefined || f.body === undefined, { message: 'fallback takes json or body, not both' })
  .refine((f) => (f.status !== 204 && f.status !== 304) || (f.json === undefined && f.body === undefined), {
    message: 'a 204 or 304 response has no content: drop json and body',
  });

const weightedService = z.strictObject({ service: z.string().min(1), weight: z.number().positive() });

const locality = z.strictObject({
  failoverThreshold: z.number().min(0).max(1).default(0.3),
  remote: z.enum(['read-only', 'any', 'never']).default('read-only'),
});

const route = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a route name of letters, digits, _ . -'),
    match,
    service: z.string().min(1).optional(),
    weighted: z.array(weightedService).min(1).optional(),
    stripPrefix: z.boolean().default(false),
    timeout: timeout.prefault('15s'),
    /** longest gap between two body chunks from the upstream */
    idleTimeout: timeout.prefault('30s'),
    /** longest time a WebSocket tunnel may carry nothing in either direction (Envoy's stream idle timeout) */
    tunnelIdleTimeout: timeout.prefault('5m'),
    retries: retries.prefault({}),
    locality: locality.prefault({}),
    sticky: sticky.optional(),
    rateLimit: rateLimit.optional(),
    breaker: breaker.prefault({}),
    fallback: fallback.optional(),
  })
  .refine((r) => (r.service === undefined) !== (r.weighted === undefined), {
    message: 'a route needs exactly one of service or weighted',
  });

export const configSchema = z.strictObject({
  gateway,
  topology,
  discovery: discovery.prefault({}),
  redis: redis.optional(),
  routes: z.array(route).min(1),
});

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
export type GatewayConfig = Config['gateway'];
export type ListenerTlsConfig = NonNullable<GatewayConfig['tls']>;
export type RouteConfig = Config['routes'][number];
export type TopologyConfig = Config['topology'];
export type DiscoveryConfig = Config['discovery'];
export type ConsulConfig = NonNullable<DiscoveryConfig['consul']>;
export type StaticInstanceConfig = DiscoveryConfig['static'][string][number];
export type RedisConfig = NonNullable<Config['redis']>;
export type UpstreamTlsConfig = DiscoveryConfig['tls'][string];
export type RetryConfig = RouteConfig['retries'];
export type StickyConfig = NonNullable<RouteConfig['sticky']>;
export type RateLimitConfig = NonNullable<RouteConfig['rateLimit']>;
export type BreakerConfig = RouteConfig['breaker'];
export type FallbackConfig = NonNullable<RouteConfig['fallback']>;

/** A bucket's capacity: `burst`, or one second of rate (at least one token) when it is not set. */
export function rateLimitBurst(limit: RateLimitConfig): number {
  return limit.burst ?? Math.max(1, limit.rate.perSecond);
}

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
}
