// A gateway with one route `app` to one upstream, for the fault-injection tests, and calls to its admin API.
import type { TestContext } from 'node:test';
import { json, send, singleRouteYaml, type HttpResult, type RouteInput } from './http.ts';
import { startGateway, type TestGateway } from './gateway.ts';
import { startUpstream, type TestUpstream } from './upstream.ts';

export async function faulted(
  t: TestContext,
  route: Partial<RouteInput>,
  gateway: Record<string, unknown> = {},
  env: Record<string, string> = {},
): Promise<{ gw: TestGateway; upstream: TestUpstream }> {
  const upstream = await startUpstream('app');
  t.after(() => upstream.close());
  const gw = await startGateway(singleRouteYaml(upstream.address, { route, gateway }), env);
  t.after(() => gw.close());
  return { gw, upstream };
}

/** The breaker state of the only instance, from GET /admin/upstreams. */
export async function breakerOf(gw: TestGateway): Promise<string | undefined> {
  return json<{ instances: { breaker: string }[] }[]>(await send(gw.adminUrl, { path: '/admin/upstreams' }))[0]?.instances[0]?.breaker;
}

export function admin(gw: TestGateway, method: string, path: string, body?: unknown, token?: string): Promise<HttpResult> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== undefined) headers.authorization = `Bearer ${token}`;
  return send(gw.adminUrl, { method, path, headers, body: body === undefined ? undefined : JSON.stringify(body) });
}
