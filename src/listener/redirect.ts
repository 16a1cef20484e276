// `gateway.tls.redirectPlain`: the plain listener only sends clients to the HTTPS one. 308 keeps the method and body
// (RFC 9110 §15.4.9), so a POST is not turned into a GET as 301 lets clients do.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { answerOnConnection } from './server.ts';
import { hostWithoutPort } from './target.ts';

const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::\d*)?$/;

export interface RedirectHandlers {
  handle(req: IncomingMessage, res: ServerResponse): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
}

/** `httpsPort` is asked per request: the listener's bound port is known only once it listens (port 0 in tests). */
export function httpsRedirect(httpsPort: () => number): RedirectHandlers {
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const host = req.headers.host;
    const target = req.url ?? '/';
    // only an origin-form target on a well-formed host is echoed into Location: nothing else is a redirect we vouch for
    if (host === undefined || !VALID_HOST.test(host) || !target.startsWith('/') || target.startsWith('//')) {
      const body = JSON.stringify({ error: 'bad_request', message: 'this listener redirects to HTTPS and needs a Host header and a path' });
      res.writeHead(400, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), connection: 'close' });
      return void res.end(body);
    }
    const port = httpsPort();
    const location = `https://${hostWithoutPort(host)}${port === 443 ? '' : `:${port}`}${target}`;
    const body = JSON.stringify({ error: 'https_required', message: `use ${location}` });
    res.writeHead(308, { location, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
    res.end(body);
  };
  return {
    handle,
    handleUpgrade: (req, socket) => {
      socket.on('error', () => socket.destroy());
      handle(req, answerOnConnection(req, socket));
    },
  };
}
