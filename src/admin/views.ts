// What the admin API shows: read-only JSON views of the running state, built when asked (never on the
// request path). DESIGN.md "Admin listener": /admin/routes, /admin/upstreams, /admin/explain.
import type { RouteConfig } from '../config/schema.ts';
import type { Registry } from '../discovery/registry.ts';
import type { BreakerState } from '../resilience/breakers.ts';
import type { Instance } from '../discovery/instance.ts';
import type { ExplainQuery } from '../routing/explain.ts';
import type { RouteTable } from '../routing/route-table.ts';

export interface InstanceView {
  readonly id: string;
  readonly address: string;
  readonly zone: string;
  /** null when the zone is not in the topology (always remote) */
  readonly city: string | null;
  readonly region: string | null;
  readonly datacenter: string | null;
  readonly weight: number;
  /** what tiers and balancing act on: discovery says healthy and the breaker has not ejected it */
  readonly healthy: boolean;
  readonly ejected: boolean;
  readonly breaker: BreakerState;
  readonly inFlight: number;
  readonly tags: readonly string[];
}

export interface ServiceView {
  readonly service: string;
  readonly snapshotVersion: number;
  readonly snapshotBuiltAt: string;
  readonly registered: number;
  readonly healthy: number;
  readonly instances: readonly InstanceView[];
}

export interface UpstreamState {
  readonly registry: Registry;
  breakerState(instance: Instance): BreakerState;
  inFlight(instance: Instance): number;
}

export function upstreamsView(state: UpstreamState): ServiceView[] {
  const services = [...state.registry.services()].sort();
  return services.map((service) => {
    const snapshot = state.registry.snapshot(service)!;
    return {
      service,
      snapshotVersion: snapshot.version,
      snapshotBuiltAt: new Date(snapshot.builtAt).toISOString(),
      registered: snapshot.instances.length,
      healthy: snapshot.healthy.length,
      instances: snapshot.instances.map((instance) => ({
        id: instance.id,
        address: instance.address,
        zone: instance.zone,
        city: instance.city ?? null,
        region: instance.region ?? null,
        datacenter: instance.datacenter ?? null,
        weight: instance.weight,
        healthy: instance.healthy,
        ejected: instance.ejected,
        breaker: state.breakerState(instance),
        inFlight: state.inFlight(instance),
        tags: instance.tags,
      })),
    };
  });
}

/** The routes in match order, as validated (durations in milliseconds). */
export function routesView(routes: RouteTable): { readonly routes: readonly RouteConfig[] } {
  return { routes: routes.routes.map((route) => route.config) };
}

/** `/admin/explain?path=…&method=…&region=…&key=…&host=…` → the explain query; a message when `path` is missing. */
export function explainQuery(search: URLSearchParams): ExplainQuery | string {
  const path = search.get('path');
  if (path === null || !path.startsWith('/')) {
    return 'explain needs a path starting with /: /admin/explain?path=/api/order/7[&method=POST][&region=sh-b][&key=u42][&host=h]';
  }
  // an empty value is as good as none, as in a request
  const optional = (name: string): string | undefined => search.get(name) || undefined;
  return { path, method: optional('method'), region: optional('region'), key: optional('key'), host: optional('host') };
}
