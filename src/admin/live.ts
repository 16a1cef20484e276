// The dashboard's live feed: once a second, off the request path, the live stats move on and a frame (topology with
// figures, tier share, routes, rate-limit decisions, new events) goes to every open `GET /admin/live` stream as a
// server-sent event. EventSource cannot send an Authorization header, so the page first asks the token-protected
// `GET /admin/live/ticket` for a short-lived ticket (an HMAC of its expiry and the admin token, with a key that lives
// as long as the process) and opens the stream with it in the URL; a changed token voids every ticket.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { Logger } from '../observability/logger.ts';
import { subscribeEvents, type GatewayEvent } from '../observability/events.ts';
import type { LiveStats } from '../observability/live-stats.ts';
import type { RateLimitStats } from '../ratelimit/metrics.ts';
import { sendJson } from './json.ts';
import { topologyFrame, type ViewSources } from './live-view.ts';

export const LIVE_PATH = '/admin/live';
export const TICKET_PATH = '/admin/live/ticket';
const TICK_MS = 1000;
const TICKET_TTL_MS = 60_000;
/** events kept for a page that opens (the newest) */
const EVENTS_KEPT = 200;
/** streams open at once; the admin listener's connection cap leaves room for the API beside them */
export const MAX_LIVE_STREAMS = 16;
/** a stream whose reader has this much unread is skipped until it catches up; one that stays behind is closed */
const MAX_UNREAD_BYTES = 512 * 1024;
const MAX_SKIPPED_FRAMES = 30;

export interface LoggedEvent extends GatewayEvent {
  readonly id: number;
  /** ms since the epoch */
  readonly at: number;
}

export interface LiveSources extends ViewSources {
  readonly stats: LiveStats;
  readonly rateLimits: RateLimitStats;
  readonly logger: Logger;
  /** the gateway's own zone (callers without X-Region-ID) */
  zone(): string;
  /** a route of the running config */
  hasRoute(name: string): boolean;
  /** routes with a rate limit */
  limitedRoutes(): ReadonlySet<string>;
  /** whether Redis / Consul are configured at all */
  uses(): { redis: boolean; consul: boolean };
}

interface Stream {
  readonly res: ServerResponse;
  skipped: number;
}

/** Per second, by what decided: the rate limiter's counters between two ticks. */
interface Decisions {
  redis: number;
  lease: number;
  denyCache: number;
  fallback: number;
}

function decisions(stats: RateLimitStats): Decisions {
  return { redis: stats.byRedis, lease: stats.byLease, denyCache: stats.byDenyCache, fallback: stats.byFallback };
}

export class LiveDashboard {
  readonly #sources: LiveSources;
  readonly #streams = new Set<Stream>();
  readonly #events: LoggedEvent[] = [];
  readonly #key = randomBytes(32);
  #eventId = 0;
  /** the last event id each frame carried: later frames carry newer ones only */
  #sentEventId = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: () => void;
  #decisions: Decisions;
  #decisionsPerSecond: Decisions = { redis: 0, lease: 0, denyCache: 0, fallback: 0 };
  #lastTick = performance.now();
  /** as the last state events said: undefined until one did */
  #redis: 'available' | 'unavailable' | undefined;
  readonly #consulUnreachable = new Set<string>();

  constructor(sources: LiveSources) {
    this.#sources = sources;
    this.#decisions = decisions(sources.rateLimits);
    this.#unsubscribe = subscribeEvents(sources.logger, (event) => this.#add(event));
  }

  start(): void {
    this.#timer ??= setInterval(() => this.#tick(), TICK_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#unsubscribe();
    for (const stream of this.#streams) stream.res.destroy();
    this.#streams.clear();
  }

  /** The newest events, oldest first. */
  get events(): readonly LoggedEvent[] {
    return this.#events;
  }

  /** A ticket that opens the live stream for TICKET_TTL_MS, bound to the admin token `token`. */
  ticket(token: string): { ticket: string; expiresInMs: number } {
    const expires = Date.now() + TICKET_TTL_MS;
    return { ticket: `${expires}.${this.#sign(expires, token)}`, expiresInMs: TICKET_TTL_MS };
  }

  accepts(ticket: string | null, token: string): boolean {
    const dot = ticket?.indexOf('.') ?? -1;
    if (ticket === null || dot === -1) return false;
    const expires = Number(ticket.slice(0, dot));
    if (!(expires > Date.now())) return false;
    const given = Buffer.from(ticket.slice(dot + 1));
    const expected = Buffer.from(this.#sign(expires, token));
    return given.length === expected.length && timingSafeEqual(given, expected);
  }

  /** `GET /admin/live` once authorised: the stream, first frame at once with the events kept so far. */
  open(res: ServerResponse): void {
    if (res.req.method === 'HEAD') {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' });
      return void res.end();
    }
    if (this.#streams.size >= MAX_LIVE_STREAMS) {
      const body = { error: 'too_many_streams', message: `at most ${MAX_LIVE_STREAMS} live dashboards at once` };
      return sendJson(res, 503, body, { 'retry-after': '10' });
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      // a proxy in front (nginx) must pass frames on as they come
      'x-accel-buffering': 'no',
    });
    // how long EventSource waits before it reconnects after the stream broke
    res.write('retry: 2000\n\n');
    const stream: Stream = { res, skipped: 0 };
    this.#streams.add(stream);
    res.once('close', () => this.#streams.delete(stream));
    this.#write(stream, this.#frame(this.#events));
  }

  #sign(expires: number, token: string): string {
    return createHmac('sha256', this.#key).update(`${expires}\0${token}`).digest('base64url');
  }

  #add(event: GatewayEvent): void {
    const logged: LoggedEvent = { ...event, id: ++this.#eventId, at: Date.now() };
    this.#events.push(logged);
    if (this.#events.length > EVENTS_KEPT) this.#events.shift();
    if (event.kind === 'redis') this.#redis = event.level === 'warn' ? 'unavailable' : 'available';
    if (event.kind === 'consul' && event.datacenter !== undefined) {
      if (event.level === 'warn') this.#consulUnreachable.add(event.datacenter);
      else this.#consulUnreachable.delete(event.datacenter);
    }
  }

  #tick(): void {
    const sources = this.#sources;
    const instances = new Set<string>();
    for (const service of sources.registry.services()) for (const instance of sources.registry.snapshot(service)!.instances) instances.add(instance.id);
    const changes = sources.stats.tick({ instance: (id) => instances.has(id), route: (name) => sources.hasRoute(name) });
    for (const change of changes) {
      const message = `callers in ${change.callers || 'the gateway zone'}: traffic moved from the ${change.from} tier to the ${change.to} tier (${Math.round(change.share * 100)}% in the last second)`;
      const fields = { service: change.service, callers: change.callers, from: change.from, to: change.to };
      sources.logger.info(fields, 'dashboard: a service\'s traffic moved to another tier');
      this.#add({ kind: 'failover', level: change.to === 'zone' ? 'info' : 'warn', message, service: change.service });
    }
    const now = performance.now();
    const seconds = Math.max(0.001, (now - this.#lastTick) / 1000);
    this.#lastTick = now;
    const current = decisions(sources.rateLimits);
    const previous = this.#decisions;
    this.#decisions = current;
    this.#decisionsPerSecond = {
      redis: (current.redis - previous.redis) / seconds,
      lease: (current.lease - previous.lease) / seconds,
      denyCache: (current.denyCache - previous.denyCache) / seconds,
      fallback: (current.fallback - previous.fallback) / seconds,
    };
    if (this.#streams.size === 0) {
      this.#sentEventId = this.#eventId;
      return;
    }
    const fresh = this.#events.filter((event) => event.id > this.#sentEventId);
    this.#sentEventId = this.#eventId;
    const frame = this.#frame(fresh);
    for (const stream of this.#streams) this.#write(stream, frame);
  }

  #frame(events: readonly LoggedEvent[]): string {
    const sources = this.#sources;
    const uses = sources.uses();
    const limited = sources.limitedRoutes();
    const view = topologyFrame(sources, sources.stats.read());
    const frame = {
      at: Date.now(),
      zone: sources.zone(),
      ...view,
      routes: view.routes.map((route) => ({ ...route, limited: limited.has(route.name) })),
      rateLimits: {
        redis: uses.redis ? (this.#redis ?? 'connecting') : 'not configured',
        decidedPerSecond: this.#decisionsPerSecond,
      },
      consul: uses.consul ? { unreachable: [...this.#consulUnreachable] } : null,
      events,
    };
    return `data: ${JSON.stringify(frame)}\n\n`;
  }

  #write(stream: Stream, frame: string): void {
    const { res } = stream;
    if (res.writableLength > MAX_UNREAD_BYTES) {
      if (++stream.skipped > MAX_SKIPPED_FRAMES) res.destroy();
      return;
    }
    stream.skipped = 0;
    res.write(frame);
  }
}
