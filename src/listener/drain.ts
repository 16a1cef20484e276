// The drain of the proxy listeners' HTTP/1 connections: once the gateway stops, every response whose head is still
// to be written says `Connection: close` — also those of requests that arrived before — so no client sends another
// request on a connection about to close. HTTP/2 sessions end with their GOAWAY instead; their streams are
// independent of one another.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

export class ConnectionDrain {
  #draining = false;
  /** responses not yet closed: a drain must reach those whose head is still to be written */
  readonly #open = new Set<ServerResponse>();
  /** connections whose response in progress says `Connection: close`: requests pipelined behind it go unanswered */
  readonly #closing = new WeakSet<Duplex>();

  /**
   * A request arrived: false when it must not be processed at all — Node drops what is pipelined behind a closing
   * response, so such a request must not reach an instance either (RFC 9112 §9.6: the server processes nothing after
   * it; the client sends it again elsewhere).
   */
  admit(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#draining && req.httpVersionMajor === 1) {
      if (this.#closing.has(req.socket)) return false;
      this.#closing.add(req.socket);
      res.shouldKeepAlive = false;
    }
    this.#open.add(res);
    return true;
  }

  /** The response closed. */
  closed(res: ServerResponse): void {
    this.#open.delete(res);
  }

  /** The gateway is stopping. */
  begin(): void {
    this.#draining = true;
    for (const res of this.#open) {
      if (res.headersSent || res.req.httpVersionMajor !== 1) continue;
      res.shouldKeepAlive = false;
      this.#closing.add(res.req.socket);
    }
  }
}
