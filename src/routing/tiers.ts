// Locality tiers (DESIGN.md "Locality"), precomputed per service snapshot: for every zone, city and region
// a caller can name, the ordered list of instance groups to try. Choosing a tier on a request is a map
// read and a few comparisons.
import type { Instance, ServiceSnapshot } from '../discovery/instance.ts';
import type { Locality, Topology } from '../topology.ts';
import { LeastRequestPicker, members, type Member } from './balancer.ts';

export type TierLabel = 'zone' | 'city' | 'region' | 'remote';

/** A set of instances tried together: its health share decides eligibility, its members the choice. */
export interface InstanceGroup {
  /** every instance of the group, healthy or not: the denominator of the healthy share */
  readonly registered: number;
  readonly healthy: readonly Instance[];
  readonly members: readonly Member<Instance>[];
  readonly picker: LeastRequestPicker<Instance>;
}

export interface TierStep {
  readonly label: TierLabel;
  /** what the step covers, for explain and logs: `sh-a`, `shanghai`, `cn-east`, `other regions` */
  readonly scope: string;
  readonly group: InstanceGroup;
}

function group(instances: readonly Instance[]): InstanceGroup {
  const healthy = instances.filter((i) => i.healthy);
  const list = members(healthy, (i) => i.id, (i) => i.weight);
  return { registered: instances.length, healthy, members: list, picker: new LeastRequestPicker(list) };
}

/** Tier steps for a caller: zone → city → remote (own region first), or city → remote, or region → remote. */
function planFor(caller: Locality, instances: readonly Instance[]): TierStep[] {
  const steps: TierStep[] = [];
  const add = (label: TierLabel, scope: string, filter: (i: Instance) => boolean): void => {
    const selected = instances.filter(filter);
    if (selected.length > 0) steps.push({ label, scope, group: group(selected) });
  };
  const { zone, city, region } = caller;
  if (zone !== undefined) {
    add('zone', zone, (i) => i.zone === zone);
    add('city', city!, (i) => i.city === city && i.zone !== zone);
  } else if (city !== undefined) {
    add('city', city, (i) => i.city === city);
  } else {
    add('region', region, (i) => i.region === region);
  }
  if (city !== undefined) add('remote', `${region} outside ${city}`, (i) => i.region === region && i.city !== city);
  add('remote', `outside ${region}`, (i) => i.region !== region);
  return steps;
}

/** Every caller locality of the topology mapped to its tier plan, for one snapshot. */
export class TierIndex {
  readonly snapshot: ServiceSnapshot;
  readonly #plans = new Map<string, readonly TierStep[]>();
  readonly #topology: Topology;

  constructor(snapshot: ServiceSnapshot, topology: Topology) {
    this.snapshot = snapshot;
    this.#topology = topology;
    for (const locality of topology.localities()) this.#plans.set(locality.name, planFor(locality, snapshot.instances));
  }

  plan(caller: Locality): readonly TierStep[] {
    let plan = this.#plans.get(caller.name);
    if (plan === undefined) {
      // Only reachable when a snapshot outlives a topology change; built once, then cached.
      plan = planFor(caller, this.snapshot.instances);
      this.#plans.set(caller.name, plan);
    }
    return plan;
  }

  get topology(): Topology {
    return this.#topology;
  }
}

/**
 * Tier indexes keyed by snapshot. Built when discovery publishes a snapshot (off the request path);
 * `of` builds one only for a snapshot it has not seen yet.
 */
export class TierIndexes {
  #indexes = new WeakMap<ServiceSnapshot, TierIndex>();
  #topology: Topology;

  constructor(topology: Topology) {
    this.#topology = topology;
  }

  setTopology(topology: Topology): void {
    this.#topology = topology;
    this.#indexes = new WeakMap();
  }

  build(snapshot: ServiceSnapshot): TierIndex {
    const index = new TierIndex(snapshot, this.#topology);
    this.#indexes.set(snapshot, index);
    return index;
  }

  of(snapshot: ServiceSnapshot): TierIndex {
    return this.#indexes.get(snapshot) ?? this.build(snapshot);
  }
}
