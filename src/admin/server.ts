// The admin listener: liveness, readiness, the read-only JSON API and the dashboard page (DESIGN.md "Admin listener").
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ExplainQuery } from '../routing/explain.ts';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard.ts';
import { explainQuery } from './views.ts';

export interface AdminHooks {
  /** config loaded and every routed service has a snapshot */
  isReady(): boolean;
  /** what /readyz adds to its body (what the gateway is still waiting for), if anything */
  readinessDetail?(): Record<string, unknown> | undefined;
  /** the bearer token the API requires; empty for none */
  token(): string;
  /** GET /admin/routes */
  routes(): unknown;
  /** GET /admin/upstreams */
  upstreams(): unknown;
  /** GET /admin/explain */
  explain(query: ExplainQuery): unknown;
  /** GET /metrics */
  metrics(): { exposition(): Promise<string>; readonly contentType: string };
  /** an endpoint failed (answered 500): the gateway logs it */
  failed(err: unknown): void;
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

function sendDashboard(res: ServerResponse): void {
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': Buffer.byteLength(DASHBOARD_HTML),
    'content-security-policy': DASHBOARD_CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cache-control': 'no-store',
  });
  res.end(DASHBOARD_HTML);
}

async function sendMetrics(res: ServerResponse, hooks: AdminHooks): Promise<void> {
  const metrics = hooks.metrics();
  try {
    const text = await metrics.exposition();
    res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
    res.end(text);
  } catch (err) {
    hooks.failed(err);
    failed(res);
  }
}

function failed(res: ServerResponse): void {
  if (!res.headersSent) sendJson(res, 500, { error: 'internal_error', message: 'the admin endpoint failed; the gateway log has the details' });
  else res.destroy();
}

/** The JSON API behind the bearer token: each endpoint reads the running state when asked. */
function api(hooks: AdminHooks, path: string, search: URLSearchParams): { status: number; body: unknown } {
  switch (path) {
    case '/admin/routes':
      return { status: 200, body: hooks.routes() };
    case '/admin/upstreams':
      return { status: 200, body: hooks.upstreams() };
    case '/admin/explain': {
      const query = explainQuery(search);
      if (typeof query === 'string') return { status: 400, body: { error: 'bad_request', message: query } };
      return { status: 200, body: hooks.explain(query) };
    }
    default:
      return { status: 404, body: { error: 'not_found', message: `no admin endpoint ${path}` } };
  }
}

export function createAdminServer(hooks: AdminHooks): Server {
  return createServer((req, res) => {
    // Origin-form only, taken as sent: no absolute-form, no `//authority`, no dot segments to resolve.
    const target = req.url ?? '';
    if (!target.startsWith('/') || target.startsWith('//')) {
      return sendJson(res, 400, { error: 'bad_request', message: 'the admin listener takes paths only (/healthz, /admin/...)' });
    }
    const question = target.indexOf('?');
    const path = question === -1 ? target : target.slice(0, question);
    const search = new URLSearchParams(question === -1 ? '' : target.slice(question + 1));
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, { error: 'method_not_allowed', message: 'the admin API is read-only: use GET' });
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    // The page holds no data (it asks the API, with the token, for everything), so it is served to anyone.
    if (path === '/') return sendDashboard(res);
    if (path === '/readyz') {
      const ready = hooks.isReady();
      return sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', ...hooks.readinessDetail?.() });
    }
    if (!authorised(req, hooks.token())) return sendJson(res, 401, { error: 'unauthorized', message: 'a valid admin bearer token is required' });
    if (path === '/metrics') return void sendMetrics(res, hooks);
    let answer: { status: number; body: unknown };
    try {
      answer = api(hooks, path, search);
    } catch (err) {
      // a bug behind one endpoint costs that request, never the gateway
      hooks.failed(err);
      return failed(res);
    }
    sendJson(res, answer.status, answer.body);
  });
}
