// The single source of truth for routes.yaml: every config type in zonegate is inferred from here,
// and `zonegate schema` emits it as JSON Schema for editors.
import { isIP } from 'node:net';
import { z } from 'zod';
import { consulAddressProblem, redisAddressProblem } from './endpoints.ts';

const DURATION = /^(\d+)(?:\.(\d+))?(ms|s|m|h)$/;
const DURATION_MS: Record<string, bigint> = { ms: 1n, s: 1000n, m: 60_000n, h: 3_600_000n };
const RATE = /^(\d+(?:\.\d+)?)\/(s|m|h)$/;
const RATE_WINDOW_S: Record<string, number> = { s: 1, m: 60, h: 3600 };
const HOST_PORT = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9._-]*)):(\d{1,5})$/;

/**
 * JSON Schema `pattern`s for the text the file holds (the schema's transforms turn it into numbers and objects),
 * so an editor flags `5 sec` as you type. `${VAR}` placeholders pass: they are replaced when the file is loaded.
 */
export const INPUT_PATTERNS = {
  duration: DURATION.source,
  rate: RATE.source,
  'host:port': HOST_PORT.source,
  'Consul address': String.raw`^(https?://)?[^\s/?#]+/?$`,
  'Redis address': String.raw`^(rediss?://\S+|[^\s/:]+(:\d{1,5})?|\d{1,5}|/\S*)$`,
  'IP or CIDR': String.raw`^[0-9A-Fa-f:.]+(/\d{1,3})?$`,
} as const;

function inputPattern(kind: keyof typeof INPUT_PATTERNS): { pattern: string } {
  return { pattern: `${INPUT_PATTERNS[kind]}|\\$\\{` };
}

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
  const text = z
    .string({ error: (issue) => (issue.input === undefined ? undefined : 'expected a duration with a unit, like 250ms, 5s or 1m') })
    .meta(inputPattern('duration'));
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

const rate = z.string().meta(inputPattern('rate')).transform((text, ctx): Rate => {
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
  const m = HOST_PORT.exec(text);
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
  const text = z
    .string({
      error: (issue) => (hint && typeof issue.input === 'number' && bare(issue.input) ? `expected host:port, got ${issue.input}${hint(issue.input)}` : undefined),
    })
    .meta(inputPattern('host:port'));
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

const cidr = z.string().meta(inputPattern('IP or CIDR')).refine(isAddressOrCidr, { message: 'expected an IP address or CIDR like 10.0.0.0/8 or fd00::/8' });

const zoneName = z.string().min(1);

const limits = z
  .strictObject({
    maxHeaderBytes: z.number().int().min(1024).default(16384).describe('Largest request head (request line and headers) in bytes; larger gets 431 headers_too_large.'),
    headersTimeout: timeout.prefault('15s').describe('Longest wait for a client to send the whole request head; then 408 request_timeout.'),
    requestTimeout: timeout.prefault('60s').describe('Longest wait for a client to send the whole request, body included; then 408. At least headersTimeout.'),
    maxBodyBytes: z.number().int().min(0).default(10 * 1024 * 1024).describe('Largest request body in bytes; larger gets 413 body_too_large (a declared length before any upstream is contacted).'),
    /** idle keep-alive connections from clients are closed after this */
    keepAliveTimeout: timeout.prefault('65s').describe('An idle keep-alive connection from a client is closed after this.'),
    maxConnections: z.number().int().positive().optional().meta({ description: 'Most client connections open at once; further ones are refused. Absent: no limit.', examples: [10000] }),
    requestBufferBytes: z
      .number()
      .int()
      .min(0)
      .default(16 * 1024)
      .describe(
        'Bytes of a request body read into memory before an upstream is picked (like nginx client_body_buffer_size): a smaller body is sent whole, a larger one streams once this much has arrived',
      ),
    requestBodyIdleTimeout: timeout
      .prefault('15s')
      .describe('Longest wait for the next byte of a request body while the gateway reads it; a stalled upload is answered 408'),
  })
  // Node refuses to start a server otherwise: the whole request cannot have less time than its head.
  .superRefine((l, ctx) => {
    if (l.headersTimeout <= l.requestTimeout) return;
    const message = `headersTimeout (${l.headersTimeout} ms) must not be longer than requestTimeout (${l.requestTimeout} ms; defaults: 15s and 60s)`;
    ctx.addIssue({ code: 'custom', message, path: ['headersTimeout'] });
  });

const upstreamPool = z.strictObject({
  connectTimeout: timeout.prefault('2s').describe('Longest wait for a connection to an instance; then the try fails as connect-failure.'),
  /** per upstream instance; undici's default is unlimited */
  maxConnections: z.number().int().positive().default(128).describe('Most connections to one upstream instance.'),
  maxPending: z
    .number()
    .int()
    .min(0)
    .default(64)
    .describe('Requests that may wait for a connection to one instance once all are busy; more fail over at once (or get 503 upstream_overloaded).'),
  queueTimeout: timeout
    .prefault('1s')
    .describe('Longest wait of a request for a busy instance\'s connection; then it fails over (nothing was sent, so any method) or gets 503 upstream_overloaded.'),
  keepAliveTimeout: timeout.prefault('4s').describe('An idle connection to an instance is closed after this; keep it below the instances\' own idle timeout.'),
  allowH2: z.boolean().default(false).describe('Offer HTTP/2 to instances over TLS (ALPN); plain connections stay HTTP/1.1.'),
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
  hosts: z.array(serverName).min(1).meta({ description: 'Server names (SNI) this certificate answers: exact names, or *.example.com for one label', examples: [['api.example.com', '*.example.com']] }),
  cert: pemFile.meta({ description: 'PEM file with the certificate chain, leaf first', examples: ['/etc/zonegate/api.crt'] }),
  key: pemFile.meta({ description: 'PEM file with the private key of the certificate', examples: ['/etc/zonegate/api.key'] }),
});

export const listenerTlsSchema = z
  .strictObject({
    listen: listenAddress.prefault('0.0.0.0:8443').describe('Address of the HTTPS listener'),
    cert: pemFile.optional().meta({ description: 'PEM certificate chain served when no sni entry names the requested host (the default certificate)', examples: ['/etc/zonegate/default.crt'] }),
    key: pemFile.optional().meta({ description: 'PEM private key of cert', examples: ['/etc/zonegate/default.key'] }),
    sni: z.array(sniCertificate).default([]).describe('Certificates chosen by the server name the client asks for; exact names win over wildcards'),
    clientCa: pemFile.optional().meta({ description: 'PEM bundle of CAs that sign client certificates: turns on mutual TLS for this listener', examples: ['/etc/zonegate/clients-ca.pem'] }),
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
  listen: listenAddress.prefault('0.0.0.0:8080').describe('Where the proxy listens, host:port (":8080" or "0.0.0.0:8080" is every interface). Applies at start.'),
  admin: listenAddress.prefault('127.0.0.1:9901').describe('Where the admin listener (health, API, metrics, dashboard) listens. An address other than loopback needs adminToken. Applies at start.'),
  adminToken: z.string().default('').describe('When set, the admin API and /metrics need "Authorization: Bearer <token>". Usually ${ZONEGATE_ADMIN_TOKEN}.'),
  zone: zoneName.meta({ description: 'This gateway\'s own zone (one of topology): the locality of a request without a usable X-Region-ID.', examples: ['sh-a'] }),
  trustedProxies: z.array(cidr).default([]).describe('Peers (IP addresses or CIDR blocks) whose X-Forwarded-* headers are trusted and extended; from anyone else they are replaced.'),
  trustRegionHeader: z.enum(['any', 'peers', 'never']).default('any').describe('Who may choose a locality with X-Region-ID: any client, only peers in trustedProxies, or nobody.'),
  routingHeaders: z.boolean().default(false).describe('Responses carry X-Zonegate-Route, X-Zonegate-Upstream and X-Zonegate-Tier (for debugging and the demo).'),
  /** nginx ignores header names with `_` by default; Envoy's edge guide rejects them */
  forwarded: z
    .boolean()
    .default(false)
    .describe('Also send the RFC 7239 Forwarded header upstream (X-Forwarded-For, -Proto and -Host are always sent). Off by default, as in Envoy, Traefik, nginx and HAProxy.'),
  underscoreHeaders: z.enum(['drop', 'reject', 'allow']).default('drop').describe('Request header names containing "_": dropped, refused with 400, or passed on.'),
  /** `%2F` / `%5C` in a path: made slashes before routing and forwarding (Envoy's edge advice), kept as data, or 400 */
  escapedSlashes: z.enum(['unescape', 'keep', 'reject']).default('unescape').describe('%2F and %5C in a path: turned into "/" before routing, kept as data, or refused with 400.'),
  drainTimeout: duration.prefault('10s').describe('On SIGTERM, the longest wait for requests in flight before the process exits.'),
  workers: z
    .union([z.literal('auto'), z.number().int().min(1).max(1024)])
    .default(1)
    .describe('Processes that serve traffic: 1 serves from this process; more (or auto: one per core) start workers that share the proxy address (SO_REUSEPORT, Linux and some BSDs) under one primary. `zonegate run --workers` overrides it. Applies at start.'),
  limits: limits.prefault({}).describe('Limits on what clients send. Apply at start.'),
  upstream: upstreamPool.prefault({}).describe('Connections to upstream instances: one pool per instance.'),
  h2c: z
    .boolean()
    .default(false)
    .describe('The plain listener also serves HTTP/2 to clients that start with its preface (h2c with prior knowledge); no Upgrade: h2c'),
  tls: listenerTlsSchema.optional().describe('HTTPS listener (HTTP/1.1 and HTTP/2) beside the plain one; see docs/tls.md'),
});

const topology = z
  .record(z.string().min(1), z.record(z.string().min(1), z.array(zoneName).min(1).meta({ description: 'The zones of a city.', examples: [['sh-a', 'sh-b']] })).meta({ description: 'A region: its cities.', examples: [{ shanghai: ['sh-a', 'sh-b'], hangzhou: ['hz-a'] }] }))
  .meta({ description: 'The places: region → city → zones. Every zone belongs to one city and every city to one region.', examples: [{ 'cn-east': { shanghai: ['sh-a', 'sh-b'] } }] });

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
  address: hostPort.meta({ description: 'Where the instance listens, host:port.', examples: ['10.0.1.7:8080'] }),
  zone: zoneName.meta({ description: 'The instance\'s zone; an instance in a zone not in topology is remote for every caller.', examples: ['sh-b'] }),
  weight: z.number().positive().default(1).describe('Relative share of traffic within its tier.'),
  id: z.string().min(1).optional().meta({ description: 'Instance id (breakers are kept per id; logs and X-Zonegate-Upstream show it). Default: <service>@host:port.', examples: ['orders-1'] }),
  tags: z.array(z.string()).default([]).describe('Free-form tags, shown by the admin API.'),
  meta: z.record(z.string(), z.string()).default({}).describe('Free-form metadata, shown by the admin API.'),
  healthy: z.boolean().default(true).describe('false takes the instance out of service (it still counts in its tier\'s registered total).'),
  tls: z
    .union([z.literal(true), upstreamTls])
    .optional()
    .meta({
      description: "The instance speaks TLS: true (with discovery.tls's settings for its service, else the defaults), or this instance's own settings",
      examples: [true],
    }),
});

export const consulSchema = z.strictObject({
  /** `http(s)://host:port` or `host:port`; empty → $CONSUL_HTTP_ADDR, then http://127.0.0.1:8500 */
  address: z
    .string()
    .meta(inputPattern('Consul address'))
    .superRefine((text, ctx) => {
      const problem = text === '' ? undefined : consulAddressProblem(text);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default('')
    .describe('The Consul agent or server: http(s)://host:port or host:port. Empty: $CONSUL_HTTP_ADDR, then http://127.0.0.1:8500.'),
  /** empty → $CONSUL_HTTP_TOKEN */
  token: z.string().default('').describe('ACL token sent as X-Consul-Token. Empty: $CONSUL_HTTP_TOKEN.'),
  datacenters: z.array(z.string().min(1)).min(1).default(['dc1']).describe('Datacenters whose instances are merged into one view of each service.'),
  zoneMeta: z.string().min(1).default('zone').describe('Service.Meta key holding an instance\'s zone; a tag "zone=<z>" also works.'),
  acceptWarning: z.boolean().default(false).describe('An instance whose checks warn (none critical) is healthy, with its Warning weight.'),
  stale: z.boolean().default(true).describe('Any Consul server may answer (scales reads, works without a leader).'),
  wait: timeout.prefault('5m').describe('How long one blocking query waits for a change (jittered per query).'),
  maxDropRatio: z.number().min(0).max(1).default(0.5).describe('An answer that removes more than this share of a service\'s healthy instances at once is confirmed by a second query before it applies.'),
  snapshotFile: z.string().optional().meta({ description: 'File where the last known instances are kept, so a gateway that starts while Consul is down serves them.', examples: ['/var/lib/zonegate/snapshot.json'] }),
  initialFetchTimeout: timeout
    .prefault('5s')
    .describe(
      'How long a starting gateway waits for every datacenter to answer for every routed service before it opens the proxy listener anyway (serving the snapshot file for what is missing)',
    ),
  translateWanAddresses: z
    .boolean()
    .default(true)
    .describe(
      "Reach instances of a datacenter other than the first in `datacenters` at their WAN address (Service.TaggedAddresses.wan, else the node's), as Consul's translate_wan_addrs does",
    ),
});

const discovery = z.strictObject({
  consul: consulSchema.optional().describe('Discover instances from Consul health data. Absent: only the static lists.'),
  static: z
    .record(z.string().min(1), z.array(staticInstance).meta({ description: 'The instances of one service.', examples: [[{ address: '10.0.1.7:8080', zone: 'sh-a' }]] }))
    .default({})
    .meta({
      description: 'Instances listed in the file, per service name; a service listed here is not looked up in Consul.',
      examples: [{ 'order-service': [{ address: '10.0.1.7:8080', zone: 'sh-a' }] }],
    }),
  tls: z
    .record(z.string().min(1), upstreamTls)
    .default({})
    .describe('Per service, how to speak TLS to its instances; every static instance of a listed service speaks TLS, and Consul instances tagged tls (or with meta tls=true)'),
});

const redisAddress = z.string().meta(inputPattern('Redis address')).superRefine((text, ctx) => {
  // empty: no Redis (`url: ${REDIS_URL:-}`); ioredis itself would read it as localhost:6379
  const problem = text === '' ? undefined : redisAddressProblem(text);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

const redis = z.strictObject({
  url: redisAddress.default('').describe('One Redis node: redis://[user:password@]host:port[/db], rediss:// for TLS, host:port or a socket path. Empty (and no cluster): buckets live in each gateway\'s memory.'),
  cluster: z.array(z.string().min(1).meta(inputPattern('Redis address')).pipe(redisAddress)).optional().meta({ description: 'Redis Cluster seed nodes, instead of url.', examples: [['redis://10.0.0.1:7000', 'redis://10.0.0.2:7000']] }),
  keyPrefix: z.string().min(1).default('zonegate').describe('Prefix of every key zonegate writes.'),
  onError: z.enum(['local', 'allow', 'deny']).default('local').describe('What decides while Redis cannot: an in-memory bucket per gateway, let every request pass, or 503 rate_limit_unavailable.'),
  commandTimeout: timeout.prefault('50ms').describe('Longest wait for a Redis answer before Redis counts as unavailable.'),
  gatewayCount: z.number().int().positive().default(1).describe('How many gateways share the limits; under onError: local each enforces 1/gatewayCount of them.'),
  /**
   * one script call per event-loop turn for every bucket it asked for (single node); false behind a proxy that
   * routes a script by its first key (twemproxy, Envoy's redis_proxy), where the other buckets would land on the wrong shard
   */
  batchDecisions: z.boolean().default(true).describe('One Redis call per event-loop turn for all decisions (single node). false behind a proxy that routes scripts by their first key (twemproxy, Envoy redis_proxy).'),
  leases: z
    .strictObject({
      interval: timeout
        .prefault('100ms')
        .describe('How long demand is measured over to size a lease, and how long a lease lives: tokens not spent within it go back to the bucket'),
      maxShare: z
        .number()
        .min(0)
        .max(1)
        .default(0.1)
        .describe("The largest lease one gateway takes, as a share of the route's burst (0: no leases, one Redis call per request)"),
    })
    .prefault({})
    .describe('Token leases: a gateway that sees a bucket busy takes several tokens in one call and admits from them locally'),
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
    prefix: z.string().startsWith('/').optional().meta({ description: 'Paths that start with this, at a segment boundary (/api/order matches /api/order and /api/order/7, not /api/orders). One of prefix or path.', examples: ['/api/order'] }),
    path: z.string().startsWith('/').optional().meta({ description: 'Exactly this path. One of prefix or path.', examples: ['/healthz'] }),
    host: hostMatch.optional().meta({ description: 'The Host header\'s host, without port, case-insensitive; *.example.com matches any host under example.com.', examples: ['api.example.com'] }),
    methods: z.array(z.string().regex(/^[A-Z]+$/, 'expected an upper-case HTTP method')).min(1).optional().meta({ description: 'Only these methods.', examples: [['GET', 'HEAD']] }),
    headers: z.record(headerName, z.string()).optional().meta({ description: 'Request headers that must have exactly these values.', examples: [{ 'X-Release': 'gray' }] }),
    caseInsensitive: z
      .boolean()
      .default(false)
      .describe('Compare prefix or path to the request path without regard to letter case (paths are case-sensitive otherwise)'),
    clientCert: z
      .strictObject({
        cn: z.array(z.string().min(1)).min(1).optional().meta({ description: "The verified client certificate's subject common name is one of these", examples: [['billing-service']] }),
        san: z.array(z.string().min(1)).min(1).optional().meta({ description: 'One of its DNS or URI subject alternative names (a SPIFFE id, say) is one of these', examples: [['spiffe://example.org/billing']] }),
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
  maxRetries: z
    .number()
    .int()
    .min(0)
    .max(10)
    .default(2)
    .describe('Retries after the first try (0: none); the access log\'s `attempts` counts tries, at most maxRetries + 1. Each goes to an instance this request has not tried.'),
  perTryTimeout: timeout.optional().meta({
    description: 'Longest wait for one try\'s response head. Absent: the route timeout shared evenly by every try, timeout / (maxRetries + 1).',
    examples: ['2s'],
  }),
  backoff: duration.prefault('25ms').describe('Base of the jittered exponential wait before a retry after a timeout or a failure status (refused and reset connections are retried at once).'),
  on: z
    .array(retryCondition)
    .default(['connect-failure', 'reset', 'timeout', 502, 503, 504])
    .describe('What is retried: connect-failure (for every method: nothing was sent), reset, timeout (a per-try timeout), and the statuses 500, 502, 503, 504.'),
  bufferBodyBytes: z.number().int().min(0).default(64 * 1024).describe('A request body of at most this many bytes is kept for a retry; a larger or chunked one is never retried.'),
});

const sticky = z
  .strictObject({
    header: headerName.optional().meta({ description: 'The sticky key is this request header.', examples: ['X-User-ID'] }),
    cookie: z.string().min(1).optional().meta({ description: 'The sticky key is this cookie.', examples: ['sid'] }),
    query: z.string().min(1).optional().meta({ description: 'The sticky key is this query parameter.', examples: ['uid'] }),
  })
  .refine((s) => [s.header, s.cookie, s.query].filter((v) => v !== undefined).length === 1, {
    message: 'sticky needs exactly one of header, cookie or query',
  });

const rateLimitKey = z.string().regex(/^(ip|route|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, 'expected ip, route or header:<name>');

const rateLimit = z.strictObject({
  key: rateLimitKey.default('ip').describe('One bucket per: ip (the client address after trustedProxies), route (all callers), or header:<name> (per header value; without it, per ip).'),
  rate: rate.meta({ description: 'Refill rate: tokens per second, minute or hour.', examples: ['100/s', '6000/m'] }),
  /** bucket capacity; absent → `rateLimitBurst` (one second of rate, at least 1) */
  burst: z.number().positive().optional().meta({ description: 'Bucket capacity: the most requests admitted at once. Absent: one second of rate, at least 1.', examples: [200] }),
  cost: z.number().positive().default(1).describe('Tokens one request takes.'),
});

const breaker = z.strictObject({
  volumeThreshold: z.number().int().min(1).default(10).describe('Tries an instance must have had in the window before the failure-share rule may open its breaker.'),
  errorThresholdPercentage: z.number().min(1).max(100).default(50).describe('Share of failed tries in the window that opens the breaker.'),
  resetTimeout: timeout.prefault('10s').describe('How long an opened breaker keeps its instance out before one probe request is let through.'),
  rollingCountTimeout: timeout.prefault('10s').describe('The window over which tries and failures are counted.'),
  maxEjectionPercent: z.number().min(0).max(100).default(50).describe('Most of a service\'s instances in one zone that breakers may take out at once for failure statuses, resets and timeouts (one always may; an instance refusing connections always is).'),
  failOn500: z.boolean().default(false).describe('A 500 answer counts as a failure (502, 503, 504 always do).'),
  consecutiveLocalOriginFailures: z
    .number()
    .int()
    .min(1)
    .default(3)
    .describe('Refused or failed connects, resets and per-try timeouts in a row that open the breaker; refused connects eject whatever maxEjectionPercent.'),
  consecutive5xx: z.number().int().min(1).default(5).describe('Failure statuses (502, 503, 504; 500 with failOn500) in a row that open the breaker.'),
});

const fallback = z
  .strictObject({
    status: z.number().int().min(200).max(599).default(503).describe('Status of the fallback response.'),
    json: z.unknown().optional().meta({ description: 'Body sent as JSON. Either json or body.', examples: [{ message: 'orders are read-only right now' }] }),
    body: z.string().optional().meta({ description: 'Body sent as text. Either json or body.', examples: ['try again in a minute'] }),
    headers: z.record(headerName, z.string()).default({}).describe('Headers added to the fallback response.'),
  })
  .refine((f) => f.json === undefined || f.body === undefined, { message: 'fallback takes json or body, not both' })
  .refine((f) => (f.status !== 204 && f.status !== 304) || (f.json === undefined && f.body === undefined), {
    message: 'a 204 or 304 response has no content: drop json and body',
  });

/** `X-Zonegate-Drill` (the header is present) or `X-Zonegate-Drill=blue` (it has exactly this value) */
const faultHeader = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+(=.*)?$/, 'expected a header name, or name=value');

const faultPercent = z.number().min(0).max(100).default(100);

/** Envoy's HTTP fault filter: a share of the route's requests is answered by the gateway, or held back first. */
export const faultSchema = z
  .strictObject({
    abort: z
      .strictObject({
        percent: faultPercent.describe('Share of the requests answered with the status instead of being forwarded: exactly this many of every 100 (0 to 100, fractions allowed).'),
        status: z.number().int().min(400).max(599).default(503).describe('Status of the injected answer (a JSON error "fault_injected").'),
      })
      .optional()
      .describe('Answer requests with an error status without forwarding them (no instance sees them; no breaker counts them).'),
    delay: z
      .strictObject({
        percent: faultPercent.describe('Share of the requests held back before they go on: exactly this many of every 100 (0 to 100, fractions allowed).'),
        duration: duration.meta({ description: 'How long a delayed request is held back. It counts toward the route timeout: a delay past it is answered 504.', examples: ['2s'] }),
      })
      .optional()
      .describe('Hold requests back before they are rate-limited and forwarded (applied before abort when both are set).'),
    header: faultHeader.optional().meta({
      description: 'Only requests carrying this header (name) or this header with this value (name=value) get the fault; absent: every request of the route.',
      examples: ['X-Zonegate-Drill', 'X-Zonegate-Drill=blue'],
    }),
  })
  .refine((f) => f.abort !== undefined || f.delay !== undefined, { message: 'fault needs abort, delay or both' });

const weightedService = z.strictObject({
  service: z.string().min(1).meta({ description: 'A service that takes part of the route\'s traffic.', examples: ['catalog-v2'] }),
  weight: z.number().positive().meta({ description: 'Its relative share.', examples: [20] }),
});

const locality = z.strictObject({
  failoverThreshold: z.number().min(0).max(1).default(0.3).describe('A tier serves only while its healthy share (healthy ÷ registered) is at least this; below it the next tier serves.'),
  remote: z.enum(['read-only', 'any', 'never']).default('read-only').describe('What the remote tier may serve: GET, HEAD and OPTIONS only (other methods get 503 remote_write_refused), every method, or nothing.'),
});

const route = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'expected a route name of letters, digits, _ . -').meta({ description: 'Unique route name: in logs, metrics, RateLimit headers and X-Zonegate-Route.', examples: ['orders'] }),
    match: match.describe('Which requests the route takes. Routes are tried in file order; the first match wins.'),
    service: z.string().min(1).optional().meta({ description: 'The service that serves the route. One of service or weighted.', examples: ['order-service'] }),
    weighted: z
      .array(weightedService)
      .min(1)
      .optional()
      .meta({
        description: 'Split the route between services by weight (canary). One of service or weighted.',
        examples: [[{ service: 'catalog-v1', weight: 80 }, { service: 'catalog-v2', weight: 20 }]],
      }),
    stripPrefix: z.boolean().default(false).describe('Remove the matched match.prefix from the path sent upstream.'),
    timeout: timeout.prefault('15s').describe('Longest wait for the response head, all tries and backoffs included; then 504 upstream_timeout.'),
    /** longest gap between two body chunks from the upstream */
    idleTimeout: timeout.prefault('30s').describe('Longest gap between two chunks of a response body from the instance.'),
    /** longest time a WebSocket tunnel may carry nothing in either direction (Envoy's stream idle timeout) */
    tunnelIdleTimeout: timeout.prefault('5m').describe('A WebSocket tunnel that carries nothing in either direction this long is closed.'),
    retries: retries.prefault({}).describe('Retries on another instance. Only idempotent methods are retried.'),
    locality: locality.prefault({}).describe('How far from the caller the route may be served.'),
    sticky: sticky.optional().describe('Keep each caller on one instance: rendezvous hashing on a key taken from one of header, cookie or query. Absent: least-request balancing.'),
    rateLimit: rateLimit.optional().describe('A token bucket per key, in Redis when redis is configured, else in memory.'),
    breaker: breaker.prefault({}).describe('The per-instance circuit breakers of the route\'s service(s); an instance whose breaker opens is taken out of service.'),
    fallback: fallback.optional().describe('What to answer when no instance can serve, instead of 503 no_healthy_upstream.'),
    fault: faultSchema.optional().describe('Fault injection for drills: answer or delay a share of the route\'s requests. Changeable at run time through the admin API; a reload resets it to this.'),
  })
  .refine((r) => (r.service === undefined) !== (r.weighted === undefined), {
    message: 'a route needs exactly one of service or weighted',
  });

export const configSchema = z.strictObject({
  gateway: gateway.describe('The gateway itself: listeners, its zone, trust, limits, connections upstream.'),
  topology,
  discovery: discovery.prefault({}).describe('Where instances come from: the static lists in this file and/or Consul.'),
  redis: redis.optional().describe('Shared rate-limit buckets in Redis. Absent: buckets live in each gateway\'s memory.'),
  routes: z
    .array(route)
    .min(1)
    .meta({
      description: 'The routes, tried in order; the first that matches a request serves it.',
      examples: [[{ name: 'orders', match: { prefix: '/api/order' }, service: 'order-service' }]],
    }),
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
export type FaultConfig = NonNullable<RouteConfig['fault']>;

/** A bucket's capacity: `burst`, or one second of rate (at least one token) when it is not set. */
export function rateLimitBurst(limit: RateLimitConfig): number {
  return limit.burst ?? Math.max(1, limit.rate.perSecond);
}

export function configJsonSchema(): unknown {
  return z.toJSONSchema(configSchema, {
    io: 'input',
    unrepresentable: 'any',
    // zod drops the examples of a transformed value on the input side; ours are written as the file holds them
    override: ({ zodSchema, jsonSchema }) => {
      const examples = z.globalRegistry.get(zodSchema as z.core.$ZodType)?.examples;
      if (examples !== undefined && jsonSchema.examples === undefined) jsonSchema.examples = examples as unknown[];
    },
  });
}
