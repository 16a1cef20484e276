// The request path, one direction: request context → route → upstream choice → forward → access log.
// Everything it reads (routes, trust, snapshots) was built before the request arrived.
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { Readable } from 'node:stream';
import type { Config } from './config/schema.ts';
import { RequestContext } from './core/context.ts';
import { EXPECTS_CONTINUE, refusedFraming } from './listener/framing.ts';
import { verifiedClientIdentity } from './listener/client-cert.ts';
import { ConnectionDrain } from './listener/drain.ts';
import { CallerLocality } from './listener/locality.ts';
import { answerOnConnection } from './listener/server.ts';
import { receiveBody, type BodyRefusal, type ReceivedBody } from './listener/request-body.ts';
import { parseTarget } from './listener/target.ts';
import { TrustedPeers } from './listener/trust.ts';
import { accessLogWriter } from './observability/access-log.ts';
import type { Logger } from './observability/logger.ts';
import type { GatewayMetrics } from './observability/metrics.ts';
import { traceIds, type TraceIds } from './observability/trace.ts';
import { injectFault, RouteFaults } from './proxy/fault.ts';
import { answerFailure, answerRefusal } from './proxy/upstream-answers.ts';
import { UpstreamFailure } from './core/failure.ts';
import { Latch } from './core/latch.ts';
import { sendGatewayError } from './proxy/gateway-error.ts';
import { MalformedRequest, upstreamRequestHeaders } from './proxy/headers.ts';
import { openTunnel } from './proxy/tunnel.ts';
import { WebSocketTunnels } from './proxy/websocket.ts';
import type { Admission } from './ratelimit/decision.ts';
import { enforceAdmission } from './ratelimit/enforce.ts';
import type { RateLimiter, RouteLimits } from './ratelimit/limiter.ts';
import { hashKey } from './routing/hash.ts';
import { runExchange, type ExchangeDeps, type ExchangeOutcome, type ExchangePlan } from './resilience/exchange.ts';
import { chooseUpstream, type UpstreamChoice } from './routing/pick.ts';
import { RouteTable, type CompiledRoute } from './routing/route-table.ts';
import { stickyKey } from './routing/sticky-key.ts';
import type { Topology } from './topology.ts';

/** What one config compiles to; swapped whole on reload, read by every request. */
export interface PipelineState {
  readonly config: Config;
  readonly routes: RouteTable;
  readonly trusted: TrustedPeers;
  readonly callers: CallerLocality;
  /** by route name; routes without `rateLimit` are absent */
  readonly rateLimits: RouteLimits;
  /** injected faults by route: the file's, changed through the admin API until the next reload */
  readonly faults: RouteFaults;
}

export function compileState(config: Config, topology: Topology, logger: Logger, limiter: RateLimiter): PipelineState {
  return {
    config,
    routes: new RouteTable(config.routes),
    trusted: new TrustedPeers(config.gateway.trustedProxies),
    callers: new CallerLocality(topology, config.gateway, logger),
    rateLimits: limiter.compile(config.routes),
    faults: new RouteFaults(config.routes),
  };
}

/** A WebSocket handshake: once admitted, its connection becomes a tunnel to the chosen instance. */
interface Upgrade {
  readonly socket: Duplex;
  readonly head: Buffer;
}

/** A request that matched a route, on its way to admission and forwarding. */
interface RoutedRequest {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly route: CompiledRoute;
  /** the headers to send upstream */
  readonly headers: string[];
  readonly peerTrusted: boolean;
  readonly upgrade: Upgrade | undefined;
}

export class Pipeline {
  state: PipelineState;
  readonly #drain = new ConnectionDrain();
  readonly #upstream: ExchangeDeps;
  readonly #logger: Logger;
  readonly #logAccess: (ctx: RequestContext) => void;
  readonly #metrics: GatewayMetrics;
  readonly #tunnels = new WebSocketTunnels();

  constructor(state: PipelineState, upstream: ExchangeDeps, logger: Logger, metrics: GatewayMetrics) {
    this.state = state;
    this.#upstream = upstream;
    this.#logger = logger;
    this.#logAccess = accessLogWriter(logger);
    this.#metrics = metrics;
  }

  readonly handle = (req: IncomingMessage, res: ServerResponse): void => this.#start(req, res, undefined);

  /**
   * A WebSocket handshake (Node hands it over with the raw connection). It takes the same path as any request, with
   * a response bound to its connection for the gateway's own answers (400, 404, 429, 503 …), which then close it.
   */
  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    this.#start(req, answerOnConnection(req, socket), { socket, head });
  };

  /** WebSocket tunnels open now. */
  get tunnels(): number {
    return this.#tunnels.size;
  }

  /** Ends every WebSocket tunnel: the drain time is up. */
  closeTunnels(): void {
    this.#tunnels.closeAll();
  }

  #start(req: IncomingMessage, res: ServerResponse, upgrade: Upgrade | undefined): void {
    const target = parseTarget(req, this.state.config.gateway.escapedSlashes);
    const ctx = typeof target === 'string' ? new RequestContext(req, req.url ?? '', '', '') : new RequestContext(req, target.path, target.query, target.host);
    const ids = traceIds(req.headers['x-request-id'], req.headers['x-trace-id'], req.headers.traceparent);
    ctx.requestId = ids.requestId;
    ctx.traceId = ids.traceId;
    ctx.traceparent = ids.traceparent;
    if (!this.#drain.admit(req, res)) return;
    // `once`: the response outlives its request (server.ts keeps each connection's last one), its context must not
    res.once('close', () => this.#finish(ctx, res));
    if (typeof target === 'string') return sendGatewayError(res, ctx, 'bad_request', target);
    // A handshake has no body (RFC 6455 §4.1); one that declares a body would have it read as WebSocket frames.
    if (upgrade !== undefined && (req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined)) {
      return sendGatewayError(res, ctx, 'bad_request', 'a WebSocket handshake has no body');
    }
    const refused = refusedFraming(req);
    // the body, if any, is not read: the connection cannot carry another request
    if (refused !== undefined) return sendGatewayError(res, ctx, refused.code, refused.message, { connection: 'close' });
    try {
      this.#route(req, res, ctx, ids, upgrade);
    } catch (err) {
      this.#internalError(res, ctx, err);
    }
  }

  #route(req: IncomingMessage, res: ServerResponse, ctx: RequestContext, ids: TraceIds, upgrade: Upgrade | undefined): void {
    const state = this.state;
    const peerTrusted = state.trusted.isTrustedSocket(req.socket);
    const headers = upstreamRequestHeaders(
      req,
      {
        ...ids,
        peerTrusted,
        regionHeaderTrusted: state.callers.trusts(peerTrusted),
        host: req.headers.host ?? '',
        forwarded: state.config.gateway.forwarded,
        scheme: ctx.scheme,
      },
      state.config.gateway.underscoreHeaders,
    );
    if (headers instanceof MalformedRequest) return sendGatewayError(res, ctx, 'bad_request', headers.message);

    const clientCert = verifiedClientIdentity(req);
    ctx.clientSubject = clientCert?.subject ?? null;
    const route = state.routes.match({ method: ctx.method, host: ctx.host, path: ctx.path, headers: req.headers, clientCert });
    if (route === undefined) return sendGatewayError(res, ctx, 'route_not_found', `no route matches ${ctx.method} ${ctx.path}`);
    ctx.route = route.name;

    const routed = { req, res, ctx, route, headers, peerTrusted, upgrade };
    // an injected fault (fault.ts) holds the request back or answers it before anything else is spent on it
    const fault = state.faults.decide(route.name, req.headers);
    if (fault === undefined) return this.#admit(routed);
    injectFault(fault, res, ctx, () => this.#admit(routed));
  }

  /**
   * Admission control between routing and forwarding: the route's rate limit, checked before any
   * upstream work. No limit, no wait; the in-memory bucket answers synchronously; Redis is one await.
   */
  #admit(routed: RoutedRequest): void {
    const limit = this.state.rateLimits.get(routed.route.name);
    if (limit === undefined) return this.#receive(routed);
    const proceed = (admission: Admission): void => {
      if (enforceAdmission(routed.res, routed.ctx, limit.policy, admission)) this.#receive(routed);
    };
    const admission = limit.check(routed.req, this.state.trusted);
    if (admission instanceof Promise) void admission.then(proceed).catch((err: unknown) => this.#internalError(routed.res, routed.ctx, err));
    else proceed(admission);
  }

  /**
   * The request body, received before an upstream is picked (listener/request-body.ts): whole up to
   * `limits.requestBufferBytes`, so a slow upload holds no upstream connection. A body kept for a retry is read whole
   * too, and goes on as a Buffer a retry can send again; any other body goes on as a stream.
   */
  #receive(routed: RoutedRequest): void {
    const { req, res, ctx, route } = routed;
    const limits = this.state.config.gateway.limits;
    const declared = req.headers['content-length'] === undefined ? undefined : Number(req.headers['content-length']);
    if (declared !== undefined && declared > limits.maxBodyBytes) return this.#refuseBody(res, ctx, BODY_TOO_LARGE);
    if (routed.upgrade !== undefined || (declared ?? (req.headers['transfer-encoding'] === undefined ? 0 : -1)) === 0) return this.#forward(routed, null);
    // Every check has passed and the body will be read: now the client may send it.
    if (req.httpVersionMinor >= 1 && EXPECTS_CONTINUE.test(req.headers.expect ?? '')) res.writeContinue();
    const keep = keepsBodyForRetry(declared, route);
    const bodyLimits = {
      bufferBytes: keep ? Math.max(limits.requestBufferBytes, declared!) : limits.requestBufferBytes,
      maxBytes: limits.maxBodyBytes,
      idleTimeout: limits.requestBodyIdleTimeout,
    };
    // Once streaming, a refusal is answered here (unless the instance's answer is already out: it may answer early),
    // and the attempt ends as the client's doing, not the instance's.
    const late = (refusal: BodyRefusal | null): Error => {
      if (refusal !== null && !res.writableEnded) this.#refuseBody(res, ctx, refusal);
      return new UpstreamFailure('client-closed');
    };
    const received = (body: ReceivedBody): void => {
      if (body.kind === 'client-closed') return void res.destroy(); // #finish logs it as closed by the client
      if (body.kind === 'refused') return this.#refuseBody(res, ctx, body.refusal);
      if (body.kind === 'streaming') return this.#forward(routed, body.body);
      if (body.body.length === 0) return this.#forward(routed, null);
      // A whole body can be sent again: as a Buffer when the route keeps bodies that large for retries.
      const retries = route.config.retries;
      const replayable = retries.maxRetries > 0 && body.body.length <= retries.bufferBodyBytes;
      this.#forward(routed, replayable ? body.body : Readable.from([body.body], { objectMode: false }));
    };
    receiveBody(req, ctx, bodyLimits, late)
      .then(received)
      .catch((err: unknown) => this.#internalError(res, ctx, err));
  }

  /** A body the gateway will not forward: answered, and the connection closes (the rest of the body is not read). */
  #refuseBody(res: ServerResponse, ctx: RequestContext, refusal: BodyRefusal): void {
    sendGatewayError(res, ctx, refusal.code, refusal.message, { connection: 'close' });
  }

  /** Picks the instance by locality and key, and streams the exchange. */
  #forward(routed: RoutedRequest, body: Readable | Buffer | null): void {
    const { req, res, ctx, route, headers, peerTrusted } = routed;
    const state = this.state;

    const caller = state.callers.resolve(ctx.regionHeader, peerTrusted);
    ctx.clientLocality = caller.name;
    const key = route.config.sticky ? stickyKey(route.config.sticky, req.headers, ctx.query) : undefined;
    ctx.sticky = key !== undefined;
    const keyHash = key === undefined ? undefined : hashKey(key);
    const choice = chooseUpstream(route, { method: ctx.method, caller, keyHash }, this.#upstream.upstreams);
    ctx.service = choice.service;
    if (choice.instance === undefined) return answerRefusal(res, ctx, route, choice.refusal);
    if (routed.upgrade !== undefined) {
      ctx.instance = choice.instance;
      ctx.tier = choice.tier;
      const deps = { tunnels: this.#tunnels, inFlight: this.#upstream.upstreams.inFlight, connectTimeout: state.config.gateway.upstream.connectTimeout, record: this.#record };
      return openTunnel(deps, { ...routed, ...routed.upgrade }, choice.instance);
    }
    const plan: ExchangePlan = {
      req,
      res,
      ctx,
      route,
      headers,
      caller,
      keyHash,
      body,
      routingHeaders: state.config.gateway.routingHeaders ? routingHeaders : noHeaders,
    };
    const settled = (ctx.exchange = new Latch());
    runExchange(this.#upstream, plan, choice, (outcome) => {
      try {
        this.#answer(plan, outcome);
      } catch (err) {
        this.#internalError(res, ctx, err);
      } finally {
        settled.open();
      }
    });
  }

  /** What the client gets when the exchange did not relay an instance's answer. */
  #answer({ res, ctx, route }: ExchangePlan, outcome: ExchangeOutcome): void {
    if (outcome.kind === 'refused') return answerRefusal(res, ctx, route, outcome.refusal);
    if (outcome.kind === 'failed') return answerFailure(res, ctx, outcome.failure);
    if (outcome.kind === 'crashed') this.#internalError(res, ctx, outcome.error);
  }

  /** A bug on the request path costs that request (502, logged), never the process. */
  #internalError(res: ServerResponse, ctx: RequestContext, err: unknown): void {
    this.#logger.error({ reqId: ctx.requestId, err: err instanceof Error ? err.stack : String(err) }, 'request failed inside the gateway');
    if (res.destroyed) return;
    try {
      sendGatewayError(res, ctx, 'upstream_unavailable', 'the gateway failed to handle this request');
    } catch {
      res.destroy(); // the response's own state is broken: only the connection can still say so
    }
  }

  /** The gateway is stopping: responses from now on close their connections (listener/drain.ts). */
  drain(): void {
    this.#drain.begin();
  }

  #finish(ctx: RequestContext, res: ServerResponse): void {
    this.#drain.closed(res);
    // nginx's convention: 499 when the client went away before a response head was sent.
    if (ctx.status === 0 || !res.headersSent) ctx.status = 499;
    // A response that never finished was cut short by the client, unless the gateway already said why.
    if (!res.writableFinished) ctx.error ??= 'client_closed';
    // A small response can close before its exchange has settled; the line waits for the breaker's verdict.
    if (ctx.exchange === null) return this.#record(ctx);
    ctx.exchange.whenOpen(() => this.#record(ctx));
  }

  /** The request's access line and its share of the metrics. */
  readonly #record = (ctx: RequestContext): void => {
    this.#logAccess(ctx);
    this.#metrics.record(ctx);
    this.#metrics.live.record(ctx);
  };
}


function noHeaders(): undefined {
  return undefined;
}

const BODY_TOO_LARGE: BodyRefusal = { code: 'body_too_large', message: 'the request body is larger than the gateway accepts' };

/**
 * Retries need the body again: keep it when it is declared small and the route retries at all. Any method's: a
 * connection refused carried nothing, so even a POST is retried then.
 */
function keepsBodyForRetry(declared: number | undefined, route: CompiledRoute): declared is number {
  const retries = route.config.retries;
  return declared !== undefined && declared > 0 && declared <= retries.bufferBodyBytes && retries.maxRetries > 0;
}

function routingHeaders(ctx: RequestContext): OutgoingHttpHeaders {
  return {
    'x-zonegate-route': ctx.route ?? '',
    'x-zonegate-upstream': ctx.instance?.id ?? '',
    'x-zonegate-tier': ctx.tier ?? '',
  };
}
