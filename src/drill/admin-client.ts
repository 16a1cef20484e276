// What the drill asks a gateway's admin API (on loopback): where its instances are, its first route, and the fault
// endpoints. Answers are checked before use, like anything read from outside the process.
import { z } from 'zod';

export interface AdminEndpoint {
  /** http://127.0.0.1:port */
  readonly origin: string;
  /** the bearer token, or '' */
  readonly token: string;
}

const upstreamsAnswer = z.array(
  z.object({
    service: z.string(),
    instances: z.array(z.object({ id: z.string(), address: z.string(), zone: z.string(), city: z.string().nullable(), ejected: z.boolean() })),
  }),
);
export type AdminInstance = z.infer<typeof upstreamsAnswer>[number]['instances'][number];

const routesAnswer = z.object({
  routes: z.array(z.object({ name: z.string(), match: z.object({ path: z.string().optional(), prefix: z.string().optional() }) })).min(1),
});

async function call(admin: AdminEndpoint, method: string, path: string, body?: unknown): Promise<unknown> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (admin.token !== '') headers.authorization = `Bearer ${admin.token}`;
  const res = await fetch(`${admin.origin}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`admin API ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as unknown;
}

/** Every instance the gateway knows, of every service. */
export async function adminInstances(admin: AdminEndpoint): Promise<AdminInstance[]> {
  return upstreamsAnswer.parse(await call(admin, 'GET', '/admin/upstreams')).flatMap((service) => service.instances);
}

/** The first route's exact path or prefix: what the load sends unless told otherwise. */
export async function firstRoutePath(admin: AdminEndpoint): Promise<string> {
  const { match } = routesAnswer.parse(await call(admin, 'GET', '/admin/routes')).routes[0]!;
  return match.path ?? match.prefix ?? '/';
}

export async function setFault(admin: AdminEndpoint, route: string, fault: unknown): Promise<void> {
  await call(admin, 'PUT', `/admin/faults/${route}`, fault);
}

export async function clearFault(admin: AdminEndpoint, route: string): Promise<void> {
  await call(admin, 'DELETE', `/admin/faults/${route}`);
}

/** The port of an admin view's `host:port` address. */
export function portOf(address: string): number {
  return Number(address.slice(address.lastIndexOf(':') + 1));
}
