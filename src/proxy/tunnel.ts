// A WebSocket handshake that passed the request path: its connection becomes a tunnel to the chosen instance (no
// breaker or retry: a handshake that fails is answered 502/504, and the client reconnects). Its access line is
// written when the tunnel closes, with what crossed it.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Instance } from '../discovery/instance.ts';
import type { RequestContext } from '../core/context.ts';
import { answerOnConnection } from '../listener/server.ts';
import type { InFlight } from '../routing/in-flight.ts';
import type { CompiledRoute } from '../routing/route-table.ts';
import { sendGatewayError } from './gateway-error.ts';
import { HandshakeTimeout, TunnelIdle, type WebSocketTunnels } from './websocket.ts';

export interface TunnelRequest {
  readonly req: IncomingMessage;
  /** bound to the connection, for the gateway's own answers */
  readonly res: ServerResponse;
  readonly ctx: RequestContext;
  readonly route: CompiledRoute;
  /** the headers to send upstream */
  readonly headers: string[];
  readonly socket: Duplex;
  readonly head: Buffer;
}

export interface TunnelDeps {
  readonly tunnels: WebSocketTunnels;
  readonly inFlight: InFlight;
  readonly connectTimeout: number;
  /** the request's access line and metrics, once the tunnel closed */
  readonly record: (ctx: RequestContext) => void;
}

export function openTunnel(deps: TunnelDeps, { req, res, ctx, route, headers, socket, head }: TunnelRequest, instance: Instance): void {
  // After the drain time no tunnel opens: the listener can only close once every upgraded connection has.
  if (deps.tunnels.closed) return sendGatewayError(res, ctx, 'no_healthy_upstream', 'the gateway is stopping and opens no new WebSocket tunnels');
  res.detachSocket(socket as Socket);
  const { inFlight } = deps;
  inFlight.begin(instance);
  ctx.tries.push(instance.id);
  const refuse = (error: Error): void => {
    const answer = answerOnConnection(req, socket);
    if (error instanceof HandshakeTimeout) sendGatewayError(answer, ctx, 'upstream_timeout', `${ctx.service} did not answer the WebSocket handshake in time`);
    else sendGatewayError(answer, ctx, 'upstream_unavailable', `${ctx.service} could not be reached (${error.message})`);
  };
  const target = {
    origin: instance.origin,
    path: route.upstreamPath(ctx.path) + ctx.query,
    headers,
    connectTimeout: deps.connectTimeout,
    handshakeTimeout: route.config.timeout,
    idleTimeout: route.config.tunnelIdleTimeout,
    ids: ctx,
  };
  deps.tunnels.open(req, socket, head, target, refuse, (outcome) => {
    inFlight.end(instance);
    if (outcome.status !== 0) ctx.status = outcome.status;
    // a tunnel closed for idleness, or one the instance broke off (reset, error) rather than closed
    if (outcome.status === 101 && outcome.error !== undefined) ctx.error ??= outcome.error instanceof TunnelIdle ? 'tunnel_idle' : 'upstream_body_failed';
    if (ctx.status === 0) {
      ctx.status = 499;
      ctx.error = 'client_closed';
    }
    ctx.bytesIn = outcome.bytesIn;
    ctx.bytesOut = outcome.bytesOut;
    deps.record(ctx);
  });
}
