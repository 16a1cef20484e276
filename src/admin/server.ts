// The admin listener: liveness, readiness, the read-only JSON API and the dashboard page (DESIGN.md "Admin listener").
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { GatewayConfig } from '../config/schema.ts';
import type { ExplainQuery } from '../routing/explain.ts';
import { TokenGuard, type TokenFailure } from './auth.ts';
import { DASHBOARD_CSP, DASHBOARD_HTML } from './dashboard.ts';
import { faultsApi, isFaultsPath, type FaultControl } from './faults.ts';
import { LIVE_PATH, TICKET_PATH, type LiveDashboard } from './live.ts';
import { sendJson } from './json.ts';
import { explainQuery } from './views.ts';

export interface AdminHooks {
  /** config loaded and every routed service has a snapshot (a promise under `--workers`: the primary asks each worker) */
  isReady(): boolean | Promise<boolean>;
  /** what /readyz adds to its body (what the gateway is still waiting for), if anything */
  readinessDetail?(): Record<string, unknown> | undefined | Promise<Record<string, unknown> | undefined>;
  /** the bearer token the API requires; empty for none */
  token(): string;
  /** GET /admin/routes */
  routes(): unknown;
  /** GET /admin/upstreams (this and explain may answer with a promise) */
  upstreams(): unknown;
  /** GET /admin/explain */
  explain(query: ExplainQuery): unknown;
  /** /admin/faults: injected faults per route, the API's only writable part */
  faults?: FaultControl;
  /**
   * GET /admin/live (the dashboard's server-sent events) and GET /admin/live/ticket; absent in the primary of
   * several workers, whose figures live in each worker (answered 501 there)
   */
  readonly live?: LiveDashboard;
  /** GET /metrics */
  metrics(): { exposition(): Promise<string>; readonly contentType: string };
  /** an endpoint failed (answered 500): the gateway logs it */
  failed(err: unknown): void;
  /** a request with a wrong or missing token (at most one call a minute per address): the gateway logs it */
  tokenRejected(failure: TokenFailure): void;
}

/**
 * Connections the admin listener holds at once: enough for dashboards, scrapers and scripts; a client that opens
 * more waits in the kernel's backlog (Node closes connections over the cap), and the proxy listener is unaffected.
 */
export const ADMIN_MAX_CONNECTIONS = 64;

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

async function sendFaults(req: IncomingMessage, res: ServerResponse, path: string, hooks: AdminHooks, control: FaultControl): Promise<void> {
  try {
    const answer = await faultsApi(control, req, path);
    if (answer.allow !== undefined) res.setHeader('allow', answer.allow);
    sendJson(res, answer.status, answer.body);
  } catch (err) {
    hooks.failed(err);
    failed(res);
  }
}

function failed(res: ServerResponse): void {
  if (!res.headersSent) sendJson(res, 500, { error: 'internal_error', message: 'the admin endpoint failed; the gateway log has the details' });
  else res.destroy();
}

/** What the primary of several workers answers for what only a worker knows (the live figures, injected faults). */
const PER_WORKER_ONLY = {
  status: 501,
  body: { error: 'not_implemented', message: 'with gateway.workers above 1, the live dashboard and injected faults are per worker and not served by the primary yet' },
} as const;

/** The JSON API behind the bearer token: each endpoint reads the running state when asked. */
function api(hooks: AdminHooks, path: string, search: URLSearchParams): { status: number; body: unknown } {
  switch (path) {
    case '/admin/routes':
      return { status: 200, body: hooks.routes() };
    case '/admin/upstreams':
      return { status: 200, body: hooks.upstreams() };
    case TICKET_PATH:
      return hooks.live ? { status: 200, body: hooks.live.ticket(hooks.token()) } : PER_WORKER_ONLY;
    case '/admin/explain': {
      const query = explainQuery(search);
      if (typeof query === 'string') return { status: 400, body: { error: 'bad_request', message: query } };
      return { status: 200, body: hooks.explain(query) };
    }
    default:
      return { status: 404, body: { error: 'not_found', message: `no admin endpoint ${path}` } };
  }
}

/** The proxy listener's limits on slow clients apply here too: Node's defaults let a slow head linger for minutes. */
type ListenerLimits = Pick<GatewayConfig['limits'], 'headersTimeout' | 'requestTimeout' | 'maxHeaderBytes'>;

/** Every admin request: health and the page for anyone, the API and /metrics behind the token. */
function adminHandler(hooks: AdminHooks, guard: TokenGuard): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    // Origin-form only, taken as sent: no absolute-form, no `//authority`, no dot segments to resolve.
    const target = req.url ?? '';
    if (!target.startsWith('/') || target.startsWith('//')) {
      return sendJson(res, 400, { error: 'bad_request', message: 'the admin listener takes paths only (/healthz, /admin/...)' });
    }
    const question = target.indexOf('?');
    const path = question === -1 ? target : target.slice(0, question);
    const search = new URLSearchParams(question === -1 ? '' : target.slice(question + 1));
    if (req.method !== 'GET' && req.method !== 'HEAD' && !isFaultsPath(path)) {
      res.setHeader('allow', 'GET, HEAD');
      return sendJson(res, 405, { error: 'method_not_allowed', message: 'the admin API is read-only but for /admin/faults: use GET' });
    }
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    // The page holds no data (it asks the API, with the token, for everything), so it is served to anyone.
    if (path === '/') return sendDashboard(res);
    if (path === '/readyz') return void sendReadiness(res, hooks);
    const remoteAddr = req.socket.remoteAddress ?? '';
    // EventSource sends no Authorization header: the live stream also opens with a ticket from TICKET_PATH
    const ticketed = path === LIVE_PATH && hooks.live !== undefined && hooks.live.accepts(search.get('ticket'), hooks.token());
    if (!ticketed && !TokenGuard.accepts(req, hooks.token())) {
      // no token at all is no guess (a dashboard before sign-in, a scraper without its token): answered at once
      if (req.headers.authorization === undefined) return sendJson(res, 401, UNAUTHORIZED);
      // a wrong one is slowed, so that guessing costs time; the answer waits, the listener does not
      const delay = setTimeout(() => sendJson(res, 401, UNAUTHORIZED), guard.failed(remoteAddr));
      res.once('close', () => clearTimeout(delay));
      return;
    }
    guard.succeeded(remoteAddr);
    if (path === '/metrics') return void sendMetrics(res, hooks);
    if (isFaultsPath(path)) {
      if (hooks.faults) return void sendFaults(req, res, path, hooks, hooks.faults);
      return sendJson(res, PER_WORKER_ONLY.status, PER_WORKER_ONLY.body);
    }
    if (path === LIVE_PATH) return hooks.live ? hooks.live.open(res) : sendJson(res, PER_WORKER_ONLY.status, PER_WORKER_ONLY.body);
    let answer: { status: number; body: unknown };
    try {
      answer = api(hooks, path, search);
    } catch (err) {
      // a bug behind one endpoint costs that request, never the gateway
      hooks.failed(err);
      return failed(res);
    }
    Promise.resolve(answer.body).then(
      (body) => sendJson(res, answer.status, body),
      (err: unknown) => {
        hooks.failed(err);
        failed(res);
      },
    );
  };
}

async function sendReadiness(res: ServerResponse, hooks: AdminHooks): Promise<void> {
  try {
    const ready = await hooks.isReady();
    sendJson(res, ready ? 200 : 503, { status: ready ? 'ready' : 'not_ready', ...(await hooks.readinessDetail?.()) });
  } catch (err) {
    hooks.failed(err);
    failed(res);
  }
}

export function createAdminServer(hooks: AdminHooks, limits: ListenerLimits): Server {
  const guard = new TokenGuard((failure) => hooks.tokenRejected(failure));
  const options = {
    headersTimeout: limits.headersTimeout,
    requestTimeout: limits.requestTimeout,
    maxHeaderSize: limits.maxHeaderBytes,
    // timeouts are only enforced on this tick (Node's default: every 30 s)
    connectionsCheckingInterval: 1000,
  };
  const server = createServer(options, adminHandler(hooks, guard));
  server.maxConnections = ADMIN_MAX_CONNECTIONS;
  return server;
}

const UNAUTHORIZED = { error: 'unauthorized', message: 'a valid admin bearer token is required' };
