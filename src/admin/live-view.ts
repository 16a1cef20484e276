// What one frame of the live dashboard holds: the topology (regions → cities → zones → instance tiles) with the
// figures of each instance and zone, the tier share, routes and rate-limit decisions. Built once a second, off the
// request path, from the registry's snapshots and the live stats.
import type { Instance } from '../discovery/instance.ts';
import type { Registry } from '../discovery/registry.ts';
import { TIERS, type LiveFigures, type TrafficFigures } from '../observability/live-stats.ts';
import type { BreakerState } from '../resilience/breakers.ts';
import type { Topology } from '../topology.ts';

/** healthy; ejected (breaker open); probing (half-open); panic (open, kept eligible by the ejection cap); unhealthy (discovery says so) */
export type TileState = 'healthy' | 'ejected' | 'probing' | 'panic' | 'unhealthy';

export interface Figures {
  readonly perSecond: number;
  readonly errorRate: number;
  readonly p99Ms: number | null;
  readonly inFlight: number;
}

export interface InstanceTile extends Figures {
  readonly id: string;
  readonly service: string;
  readonly address: string;
  readonly state: TileState;
  readonly breaker: BreakerState;
  /** tries that failed on it and went elsewhere, per second */
  readonly failedTriesPerSecond: number;
}

export interface ZoneView extends Figures {
  readonly zone: string;
  readonly instances: readonly InstanceTile[];
}

export interface RegionView {
  /** null: zones the topology does not name (their instances are remote for every caller) */
  readonly region: string | null;
  readonly cities: readonly { readonly city: string | null; readonly zones: readonly ZoneView[] }[];
}

export interface RouteFigures {
  readonly name: string;
  readonly perSecond: number;
  readonly errorRate: number;
  readonly p99Ms: number | null;
  /** 429s per second, for routes with a rate limit */
  readonly limitedPerSecond: number;
}

export interface TopologyFrame {
  readonly regions: readonly RegionView[];
  readonly tiers: { readonly names: readonly string[]; readonly counts: readonly number[]; readonly series: readonly (readonly number[])[] };
  readonly services: readonly { readonly service: string; readonly counts: readonly number[] }[];
  readonly routes: readonly RouteFigures[];
  readonly totals: Figures;
}

export interface ViewSources {
  readonly registry: Registry;
  topology(): Topology;
  breakerState(instance: Instance): BreakerState;
  inFlight(instance: Instance): number;
}

const IDLE: TrafficFigures = { requests: 0, perSecond: 0, errorRate: 0, p99Ms: null, refusedPerSecond: 0 };

function tileState(instance: Instance, breaker: BreakerState): TileState {
  if (!instance.ejected && breaker === 'open') return 'panic';
  if (instance.ejected) return 'ejected';
  if (breaker === 'half-open') return 'probing';
  return instance.healthy ? 'healthy' : 'unhealthy';
}

function tile(instance: Instance, sources: ViewSources, figures: TrafficFigures): InstanceTile {
  const breaker = sources.breakerState(instance);
  return {
    id: instance.id,
    service: instance.service,
    address: instance.address,
    state: tileState(instance, breaker),
    breaker,
    inFlight: sources.inFlight(instance),
    perSecond: figures.perSecond,
    errorRate: figures.errorRate,
    p99Ms: figures.p99Ms,
    failedTriesPerSecond: figures.refusedPerSecond,
  };
}

export function topologyFrame(sources: ViewSources, figures: LiveFigures): TopologyFrame {
  const byZone = new Map<string, InstanceTile[]>();
  for (const service of [...sources.registry.services()].sort()) {
    for (const instance of sources.registry.snapshot(service)!.instances) {
      const tiles = byZone.get(instance.zone) ?? [];
      byZone.set(instance.zone, tiles);
      tiles.push(tile(instance, sources, figures.instances.get(instance.id) ?? IDLE));
    }
  }
  const zoneView = (zone: string): ZoneView => {
    const instances = byZone.get(zone) ?? [];
    const zoneFigures = figures.zones.get(zone) ?? IDLE;
    return {
      zone,
      instances,
      perSecond: zoneFigures.perSecond,
      errorRate: zoneFigures.errorRate,
      p99Ms: zoneFigures.p99Ms,
      inFlight: instances.reduce((sum, instance) => sum + instance.inFlight, 0),
    };
  };
  const topology = sources.topology();
  const regions: RegionView[] = topology.regions.map((region) => ({
    region,
    cities: topology.citiesOf(region).map((city) => ({ city, zones: topology.zonesOf(city).map(zoneView) })),
  }));
  const unplaced = [...byZone.keys()].filter((zone) => !topology.hasZone(zone)).sort();
  if (unplaced.length > 0) regions.push({ region: null, cities: [{ city: null, zones: unplaced.map(zoneView) }] });

  const total = figures.total;
  let inFlight = 0;
  for (const tiles of byZone.values()) for (const instance of tiles) inFlight += instance.inFlight;
  return {
    regions,
    tiers: { names: TIERS, counts: figures.tiers.counts, series: figures.tiers.series },
    services: [...figures.services].map(([service, tiers]) => ({ service, counts: tiers.counts })).sort((a, b) => (a.service < b.service ? -1 : 1)),
    routes: [...figures.routes].map(([name, route]) => ({
      name,
      perSecond: route.perSecond,
      errorRate: route.errorRate,
      p99Ms: route.p99Ms,
      limitedPerSecond: route.refusedPerSecond,
    })),
    totals: { perSecond: total.perSecond, errorRate: total.errorRate, p99Ms: total.p99Ms, inFlight },
  };
}
