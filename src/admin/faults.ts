// The admin API's one writable part: injected faults per route (GET, PUT/POST, DELETE /admin/faults/<route>). A
// change applies to the next request, is logged with who made it, and lasts until the next reload of routes.yaml.
import type { IncomingMessage } from 'node:http';
import { faultSchema, type FaultConfig } from '../config/schema.ts';
import { publishEvent } from '../observability/events.ts';
import type { Logger } from '../observability/logger.ts';
import type { FaultView, RouteFaults } from '../proxy/fault.ts';

const FAULTS_PATH = '/admin/faults';
/** a fault is a few dozen bytes of JSON */
const MAX_BODY_BYTES = 16 * 1024;

export interface FaultControl {
  list(): FaultView[];
  /** false: no such route */
  set(route: string, fault: FaultConfig, remoteAddr: string): boolean;
  /** false: the route had no fault */
  clear(route: string, remoteAddr: string): boolean;
  hasRoute(route: string): boolean;
}

/** The running config's faults (`current` changes on reload), with every change logged. */
export function faultControl(current: () => RouteFaults, logger: Logger): FaultControl {
  return {
    list: () => current().view(),
    hasRoute: (route) => current().has(route),
    set(route, fault, remoteAddr) {
      if (!current().set(route, fault)) return false;
      logger.warn({ route, fault, remoteAddr }, 'admin: fault injection set on a route');
      publishEvent(logger, { kind: 'fault', level: 'warn', message: `fault injected on route ${route}: ${describeFault(fault)}` });
      return true;
    },
    clear(route, remoteAddr) {
      if (!current().clear(route)) return false;
      logger.warn({ route, remoteAddr }, 'admin: fault injection cleared on a route');
      publishEvent(logger, { kind: 'fault', level: 'info', message: `fault injection cleared on route ${route}` });
      return true;
    },
  };
}

/** `abort 50% with 503, delay 10% by 2000 ms, only with X-Drill`: the dashboard's event line. */
function describeFault(fault: FaultConfig): string {
  const parts: string[] = [];
  if (fault.abort) parts.push(`abort ${fault.abort.percent}% with ${fault.abort.status}`);
  if (fault.delay) parts.push(`delay ${fault.delay.percent}% by ${fault.delay.duration} ms`);
  if (fault.header !== undefined) parts.push(`only with ${fault.header}`);
  return parts.join(', ');
}

export function isFaultsPath(path: string): boolean {
  return path === FAULTS_PATH || path.startsWith(`${FAULTS_PATH}/`);
}

export interface FaultsAnswer {
  readonly status: number;
  readonly body: unknown;
  readonly allow?: string;
}

const error = (status: number, code: string, message: string): FaultsAnswer => ({ status, body: { error: code, message } });

/** One request to /admin/faults[/<route>], already past the token check. */
export async function faultsApi(control: FaultControl, req: IncomingMessage, path: string): Promise<FaultsAnswer> {
  const method = req.method ?? 'GET';
  const read = method === 'GET' || method === 'HEAD';
  if (path === FAULTS_PATH) {
    if (!read) return { ...error(405, 'method_not_allowed', 'set or clear a fault at /admin/faults/<route>'), allow: 'GET, HEAD' };
    return { status: 200, body: { faults: control.list() } };
  }
  const route = path.slice(FAULTS_PATH.length + 1);
  if (!control.hasRoute(route)) return error(404, 'route_not_found', `the running config has no route "${route}"`);
  const remoteAddr = req.socket.remoteAddress ?? '';
  switch (method) {
    case 'GET':
    case 'HEAD': {
      const fault = control.list().find((view) => view.route === route);
      return fault ? { status: 200, body: fault } : error(404, 'not_found', `route "${route}" has no fault`);
    }
    case 'PUT':
    case 'POST': {
      const parsed = await readFault(req);
      if ('status' in parsed) return parsed;
      control.set(route, parsed.fault, remoteAddr);
      return { status: 200, body: control.list().find((view) => view.route === route) };
    }
    case 'DELETE':
      return control.clear(route, remoteAddr)
        ? { status: 200, body: { route, cleared: true } }
        : error(404, 'not_found', `route "${route}" has no fault`);
    default:
      return { ...error(405, 'method_not_allowed', 'a fault is read with GET, set with PUT or POST, cleared with DELETE'), allow: 'GET, HEAD, PUT, POST, DELETE' };
  }
}

/** The request body as a fault, checked as routes.yaml's `fault` is. */
async function readFault(req: IncomingMessage): Promise<{ fault: FaultConfig } | FaultsAnswer> {
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) return error(413, 'body_too_large', `a fault is at most ${MAX_BODY_BYTES} bytes of JSON`);
      chunks.push(chunk);
    }
  } catch {
    // the client went away mid-body: nothing is set, and nobody is left to answer
    return error(400, 'bad_request', 'the request body was cut short');
  }
  let json: unknown;
  try {
    json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return error(400, 'bad_request', 'expected a JSON body like {"abort": {"percent": 50, "status": 503}}');
  }
  const result = faultSchema.safeParse(json);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${['fault', ...issue.path].join('.')}: ${issue.message}`);
    return error(400, 'bad_request', problems.join('; '));
  }
  return { fault: result.data };
}
