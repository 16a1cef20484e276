// `zonegate drill --demo <control URL>`: the drill against a running `zonegate demo`, through the demo's control
// listener (src/demo/control.ts), so the demo's dashboard shows the drill as it happens. Every scenario shares the
// demo's gateway: before each, the drill waits until no instance is ejected any more.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { adminInstances, firstRoutePath } from './admin-client.ts';
import type { DrillInstance, Fleet, FleetGateway } from './fleet.ts';

const rootAnswer = z.object({
  gateway: z.string().regex(/^http:\/\/127\.0\.0\.1:\d+$/),
  admin: z.string().regex(/^http:\/\/127\.0\.0\.1:\d+$/),
  instances: z.array(z.object({ id: z.string(), service: z.string(), zone: z.string(), host: z.string(), port: z.number().int() })),
});
const arrivalsAnswer = z.object({ arrivals: z.array(z.number()) });

/** the longest wait for the demo's breakers to close again before a scenario */
const SETTLE_MS = 30_000;

async function control(base: string, method: 'GET' | 'POST', path: string): Promise<unknown> {
  const res = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(5000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`demo control ${method} ${path}: ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as unknown;
}

export async function connectDemo(controlUrl: string, adminToken: string): Promise<Fleet> {
  const base = controlUrl.replace(/\/+$/, '');
  if (!/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(base)) throw new Error(`--demo takes the demo's control listener on loopback, like http://127.0.0.1:9909; got ${controlUrl}`);
  const root = rootAnswer.parse(await control(base, 'GET', '/'));
  const post = async (port: number, action: string): Promise<void> => void (await control(base, 'POST', `/instances/${port}/${action}`));
  const instances: DrillInstance[] = root.instances.map(({ id, service, zone, port }) => ({
    id,
    service,
    zone,
    port,
    kill: () => post(port, 'kill'),
    hang: () => post(port, 'hang'),
    fail: (percent, status) => post(port, `fail?percent=${percent}&status=${status}`),
    restore: () => post(port, 'restore'),
    arrivals: async (since) => arrivalsAnswer.parse(await control(base, 'GET', `/instances/${port}/arrivals?since=${since}`)).arrivals,
  }));
  const admin = { origin: root.admin, token: adminToken };
  return {
    instances,
    consulRelay: undefined,
    redisRelay: undefined,
    notes: ['against a running demo: consul-unavailable and redis-unavailable need the drill\'s own fleet (no --demo)'],
    async gateway(): Promise<FleetGateway> {
      // the previous scenario's ejections heal first, or this one's "before" would not be the normal state
      for (const deadline = performance.now() + SETTLE_MS; performance.now() < deadline; await sleep(250)) {
        if (!(await adminInstances(admin)).some((instance) => instance.ejected)) break;
      }
      return { origin: root.gateway, port: Number(new URL(root.gateway).port), admin, release: async () => {} };
    },
    firstRoutePath: () => firstRoutePath(admin),
    close: async () => {},
  };
}
