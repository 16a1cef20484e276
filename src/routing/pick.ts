// Chooses the service and the instance for a routed request. Everything the request path calls to make
// that choice goes through `chooseUpstream`, so locality tiers and hashing replace the body, not callers.
import type { Instance, ServiceSnapshot } from '../discovery/instance.ts';
import type { Registry } from '../discovery/registry.ts';
import type { CompiledRoute } from './route-table.ts';

export interface UpstreamChoice {
  readonly service: string;
  /** undefined when the service has no healthy instance */
  readonly instance: Instance | undefined;
  readonly snapshot: ServiceSnapshot | undefined;
}

const cursors = new WeakMap<ServiceSnapshot, { next: number }>();

function roundRobin(snapshot: ServiceSnapshot): Instance | undefined {
  const healthy = snapshot.healthy;
  if (healthy.length === 0) return undefined;
  let cursor = cursors.get(snapshot);
  if (cursor === undefined) {
    cursor = { next: 0 };
    cursors.set(snapshot, cursor);
  }
  const instance = healthy[cursor.next % healthy.length];
  cursor.next = (cursor.next + 1) % healthy.length;
  return instance;
}

function chooseService(route: CompiledRoute): string {
  const weighted = route.config.weighted;
  if (!weighted) return route.services[0]!;
  let total = 0;
  for (const w of weighted) total += w.weight;
  let point = Math.random() * total;
  for (const w of weighted) if ((point -= w.weight) < 0) return w.service;
  return weighted[weighted.length - 1]!.service;
}

export function chooseUpstream(route: CompiledRoute, registry: Registry): UpstreamChoice {
  const service = chooseService(route);
  const snapshot = registry.snapshot(service);
  return { service, snapshot, instance: snapshot ? roundRobin(snapshot) : undefined };
}
