// WebSocket upgrades (http-proxy-3): the handshake goes to the chosen instance, and once it answers 101 the two
// sockets are piped until either side closes. Routing, locality, admission and headers were settled by the pipeline
// before; this file only runs the tunnel and reports how it went.
import type { ClientRequest, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createProxyServer } from 'http-proxy-3';
import { downstreamResponseHeaders, type ForwardingInfo } from './headers.ts';

type ResponseIds = Pick<ForwardingInfo, 'requestId' | 'traceId'>;

export interface TunnelRequest {
  /** `http://host:port` of the instance */
  readonly origin: string;
  /** path and query as sent upstream */
  readonly path: string;
  /** the request headers to send upstream, hop-by-hop ones already removed */
  readonly headers: readonly string[];
  /** longest wait for the TCP connection to the instance */
  readonly connectTimeout: number;
  /** longest wait for the instance's answer to the handshake */
  readonly handshakeTimeout: number;
  /** an open tunnel that carries nothing either way for this long is closed */
  readonly idleTimeout: number;
  /** put on the instance's answer */
  readonly ids: ResponseIds;
}

export interface TunnelOutcome {
  /** 101 when upgraded; the instance's status when it answered otherwise; 0 when it could not be reached */
  readonly status: number;
  /** why the tunnel could not be opened or ended abnormally */
  readonly error: Error | undefined;
  readonly bytesIn: number;
  readonly bytesOut: number;
}

interface OpenTunnel {
  status: number;
  error: Error | undefined;
  /** the handshake request to the instance */
  handshake: ClientRequest | undefined;
  /** the connection to the instance, once it upgraded */
  upstream: Duplex | undefined;
  readonly ids: ResponseIds;
  /** stops reading the client before the tunnel's pipe takes over */
  readonly upgraded: () => void;
}

export class HandshakeTimeout extends Error {
  constructor(ms: number) {
    super(`the instance did not answer the WebSocket handshake within ${ms} ms`);
    this.name = 'HandshakeTimeout';
  }
}

export class TunnelIdle extends Error {
  constructor(ms: number) {
    super(`nothing crossed the WebSocket tunnel for ${ms} ms`);
    this.name = 'TunnelIdle';
  }
}

/** How long the instance's side of a tunnel may take to close after the client's has. */
const UPSTREAM_CLOSE_GRACE_MS = 2_000;

/**
 * When the client's side closes, http-proxy-3 only half-closes the instance's (what the client sent last still
 * goes out); an instance that vanished never completes that, and would hold the connection until TCP gives up.
 */
function closeSoon(upstream: Duplex | undefined): void {
  if (upstream === undefined || upstream.destroyed) return;
  const timer = setTimeout(() => upstream.destroy(), UPSTREAM_CLOSE_GRACE_MS).unref();
  upstream.once('close', () => clearTimeout(timer));
}

/**
 * http-proxy-3 frames a relayed answer without Content-Length as chunked, a 204 or 304 too, though these have no body
 * and may not say Transfer-Encoding (RFC 9110 §8.6, RFC 9112 §6.1): it would send a chunked head and an empty last
 * chunk after it. A Content-Length it can read but does not copy (its header copy only sees enumerable ones) stops that.
 */
function withoutBodyFraming(head: Record<string, unknown>): void {
  if (head['content-length'] === undefined) Object.defineProperty(head, 'content-length', { value: '0', enumerable: false });
}

/** The header object http-proxy-3 sends, from the pipeline's flat list plus the upgrade itself. */
function handshakeHeaders(headers: readonly string[]): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!.toLowerCase();
    const value = headers[i + 1]!;
    const existing = out[name];
    out[name] = existing === undefined ? value : Array.isArray(existing) ? [...existing, value] : [existing, value];
  }
  out.connection = 'Upgrade';
  out.upgrade = 'websocket';
  return out;
}

export class WebSocketTunnels {
  readonly #proxy = createProxyServer({ ws: true, xfwd: false });
  readonly #open = new Map<IncomingMessage, OpenTunnel>();
  readonly #sockets = new Set<Duplex>();
  #closed = false;

  constructor() {
    // Per-request outcomes: which status the instance answered the handshake with. These listeners run before
    // http-proxy-3's own, so the ids added here go out with the instance's answer.
    this.#proxy.on('proxyReqWs', (proxyReq, req) => {
      const tunnel = this.#open.get(req);
      if (tunnel === undefined) return;
      tunnel.handshake = proxyReq;
      // The answer's head goes out as http-proxy-3 finds it, so the proxy header rules are applied to it here.
      const answered = (answer: IncomingMessage, status: number): void => {
        tunnel.status = status;
        const head = downstreamResponseHeaders(answer.headers, tunnel.ids);
        if (status !== 101) {
          head.connection = 'close'; // the client's connection ends with this answer
          if (status === 204 || status === 304) withoutBodyFraming(head);
        } else {
          head.connection = 'Upgrade';
          if (answer.headers.upgrade !== undefined) head.upgrade = answer.headers.upgrade;
        }
        answer.headers = head as IncomingHttpHeaders;
      };
      proxyReq.once('upgrade', (answer: IncomingMessage, upstream: Duplex) => {
        tunnel.upstream = upstream;
        tunnel.upgraded();
        answered(answer, 101);
      });
      proxyReq.once('response', (answer: IncomingMessage) => answered(answer, answer.statusCode ?? 0));
    });
    // http-proxy-3 also reports a client socket's errors (a reset, a write after the peer left) here, whatever
    // callback ws() was given; its default handler throws them. Each tunnel learns of its end from its socket's
    // close, and of a failed handshake from the ws() callback.
    this.#proxy.on('error', () => {});
  }

  /** No more tunnels: closeAll() ran, the gateway is stopping. */
  get closed(): boolean {
    return this.#closed;
  }

  get size(): number {
    return this.#sockets.size;
  }

  /**
   * Opens a tunnel from the client's socket to the instance. `onClose` runs once, when the tunnel (or the attempt to
   * open it) is over. Before the instance answered, a failure is written to the client as `refuse` says.
   */
  open(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    request: TunnelRequest,
    refuse: (error: Error) => void,
    onClose: (outcome: TunnelOutcome) => void,
  ): void {
    // Until the 101, the client's socket is read only to notice that it left (while the instance is slow, or while a
    // non-101 answer is relayed): nothing may come before the 101 (RFC 6455 §4.1), so what does is dropped. Bytes
    // that came with the handshake itself are kept for the tunnel, and then the socket is left as it is.
    const dropEarly = (): void => {};
    const tunnel: OpenTunnel = {
      status: 0,
      error: undefined,
      handshake: undefined,
      upstream: undefined,
      ids: request.ids,
      upgraded: () => {
        socket.off('data', dropEarly);
        socket.pause(); // the tunnel's pipe reads from here on
        // Every byte of the tunnel is read from or written to the client's socket, so its inactivity is the tunnel's.
        // (An HTTP server's connections are net.Sockets, TLS ones included.)
        (socket as Socket).setTimeout(request.idleTimeout, () => {
          tunnel.error ??= new TunnelIdle(request.idleTimeout);
          // Both ends at once: http-proxy-3 would only half-close the instance's side, which a peer that vanished never completes.
          tunnel.upstream?.destroy();
          socket.destroy();
        });
      },
    };
    if (head.length === 0) socket.on('data', dropEarly).resume();
    // Node's server keeps connections half-open: a client that ends its side before the 101 has left.
    socket.once('end', () => {
      if (tunnel.status !== 101) socket.destroy();
    });
    const fail = (error: Error): void => {
      if (tunnel.error !== undefined) return; // one failure answers; what follows from it (the aborted handshake) does not
      tunnel.error = error;
      // Nothing of the instance's reached the client yet: it gets the gateway's answer. After that, only the close.
      if (tunnel.status === 0 && !socket.destroyed) refuse(error);
    };
    // http-proxy-3 has no deadline for the handshake's answer: an instance that accepts and stays silent would hold it.
    const deadline = setTimeout(() => {
      if (tunnel.status !== 0) return;
      fail(new HandshakeTimeout(request.handshakeTimeout));
      tunnel.handshake?.destroy();
    }, request.handshakeTimeout);
    this.#open.set(req, tunnel);
    this.#sockets.add(socket);
    socket.once('close', () => {
      clearTimeout(deadline);
      // A client that leaves takes the handshake with it: unanswered, or an answer other than 101 still being relayed.
      if (tunnel.status !== 101) tunnel.handshake?.destroy();
      else closeSoon(tunnel.upstream);
      this.#open.delete(req);
      this.#sockets.delete(socket);
      const { bytesRead = 0, bytesWritten = 0 } = socket as Duplex & { bytesRead?: number; bytesWritten?: number };
      onClose({ status: tunnel.status, error: tunnel.error, bytesIn: bytesRead, bytesOut: bytesWritten });
    });
    req.url = request.path;
    req.headers = handshakeHeaders(request.headers) as IncomingMessage['headers'];
    this.#proxy.ws(req, socket, head, { target: request.origin, connectTimeout: request.connectTimeout }, (err) => {
      fail(err instanceof Error ? err : new Error(String(err)));
    });
  }

  /** Ends every open tunnel and refuses new ones (the gateway is stopping and its drain time is up). */
  closeAll(): void {
    this.#closed = true;
    for (const socket of this.#sockets) socket.destroy();
  }
}
