// The admin listener: liveness and readiness now; the JSON API and dashboard grow here.
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface AdminHooks {
  /** config loaded and every routed service has a snapshot */
  isReady(): boolean;
  /** the bearer token the API requires; empty for none */
  token(): string;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function authorised(req: IncomingMessage, token: string): boolean {
  if (token === '') return true;
  const given = Buffer.from(req.headers.authorization ?? '');
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

export function createAdminServer(hooks: AdminHooks): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = hooks.isReady();
      return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready' });
    }
    if (!authorised(req, hooks.token())) return sendJson(res, 401, { error: 'unauthorized', message: 'a valid admin bearer token is required' });
    sendJson(res, 404, { error: 'not_found', message: `no admin endpoint ${path}` });
  });
}
