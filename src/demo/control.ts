// The demo's control listener (loopback only): what `zonegate drill --demo` uses to break the running demo's
// simulated instances and to read when they received requests. It can do nothing but that.
//   GET  /                                 {gateway, admin, instances: [{id, service, zone, host, port}]}
//   POST /instances/<port>/kill | hang | restore
//   POST /instances/<port>/fail?percent=95&status=503
//   GET  /instances/<port>/arrivals?since=<ms since the epoch>   {arrivals: [ms since the epoch, …]}
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { HostPort } from '../config/schema.ts';
import { sendJson } from '../admin/json.ts';
import type { DemoUpstreams, InstanceControl } from './upstreams.ts';

export interface DemoEndpoints {
  /** the demo gateway's proxy and admin listeners, http://127.0.0.1:port */
  readonly gateway: string;
  readonly admin: string;
}

async function act(control: InstanceControl, action: string, search: URLSearchParams): Promise<string | undefined> {
  switch (action) {
    case 'kill':
      return void (await control.kill());
    case 'hang':
      return void control.hang();
    case 'restore':
      return void (await control.restore());
    case 'fail': {
      const percent = Number(search.get('percent') ?? '100');
      const status = Number(search.get('status') ?? '503');
      if (!(percent >= 0 && percent <= 100) || !Number.isInteger(status) || status < 400 || status > 599) return 'fail takes percent (0-100) and status (400-599)';
      return void control.fail(percent, status);
    }
    default:
      return `no action "${action}" (kill, hang, fail, restore)`;
  }
}

function handler(upstreams: DemoUpstreams, endpoints: DemoEndpoints): (req: IncomingMessage, res: ServerResponse) => Promise<void> {
  return async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    req.resume();
    if (url.pathname === '/' && req.method === 'GET') {
      const instances = upstreams.controls.map(({ instance }) => ({ id: instance.id, service: instance.service, zone: instance.zone, host: instance.host, port: instance.port }));
      return sendJson(res, 200, { ...endpoints, instances });
    }
    const m = /^\/instances\/(\d+)\/([a-z]+)$/.exec(url.pathname);
    const control = m ? upstreams.controls.find((candidate) => candidate.instance.port === Number(m[1])) : undefined;
    if (!m || control === undefined) return sendJson(res, 404, { error: 'not_found', message: 'GET / lists the instances; POST /instances/<port>/<action>' });
    const action = m[2]!;
    if (action === 'arrivals') {
      const since = Number(url.searchParams.get('since') ?? '0');
      return sendJson(res, 200, { arrivals: control.arrivals.filter((at) => at >= since) });
    }
    if (req.method !== 'POST') return sendJson(res, 405, { error: 'method_not_allowed', message: `${action} is a POST` });
    const refused = await act(control, action, url.searchParams);
    if (refused !== undefined) return sendJson(res, 400, { error: 'bad_request', message: refused });
    sendJson(res, 200, { port: control.instance.port, action });
  };
}

/** Listens on `address` (forced onto 127.0.0.1: it can break the demo). */
export async function startDemoControl(upstreams: DemoUpstreams, endpoints: DemoEndpoints, address: HostPort): Promise<Server> {
  const handle = handler(upstreams, endpoints);
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => sendJson(res, 500, { error: 'internal_error', message: String(err) }));
  });
  server.listen(address.port, '127.0.0.1');
  await once(server, 'listening');
  return server;
}
