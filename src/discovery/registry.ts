// The one place snapshots live. Sources (static list, Consul watcher) call `replace`; breakers call
// `setEjected`; the request path calls `snapshot`, a map read of an immutable object swapped in whole.
import { EventEmitter } from 'node:events';
import type { Topology } from '../topology.ts';
import { buildSnapshot, toInstance, type InstanceSpec, type ServiceSnapshot } from './instance.ts';

export interface RegistryEvents {
  change: [snapshot: ServiceSnapshot, previous: ServiceSnapshot | undefined];
  /** a service no source provides any more: its instances, breakers and pools go */
  removed: [service: string];
}

export class Registry extends EventEmitter<RegistryEvents> {
  readonly #snapshots = new Map<string, ServiceSnapshot>();
  /** what discovery said, per service: snapshots are rebuilt from these plus the ejection overlay */
  readonly #specs = new Map<string, readonly InstanceSpec[]>();
  /** instance ids whose breaker is open: unhealthy for tiering whatever discovery says */
  readonly #ejected = new Set<string>();
  #topology: Topology;
  #version = 0;

  constructor(topology: Topology) {
    super();
    this.#topology = topology;
  }

  snapshot(service: string): ServiceSnapshot | undefined {
    return this.#snapshots.get(service);
  }

  /** What the service's source said, without the ejection overlay: what outlives this process. */
  specs(service: string): readonly InstanceSpec[] | undefined {
    return this.#specs.get(service);
  }

  services(): IterableIterator<string> {
    return this.#snapshots.keys();
  }

  /** Replaces a service's whole instance list and publishes a new snapshot. */
  replace(service: string, specs: readonly InstanceSpec[]): ServiceSnapshot {
    this.#specs.set(service, specs);
    return this.#publish(service);
  }

  /** Flips discovery health of one instance (static registry, tests); a no-op when unchanged. */
  setHealthy(service: string, id: string, healthy: boolean): ServiceSnapshot | undefined {
    const specs = this.#specs.get(service);
    const target = specs?.find((spec) => spec.id === id);
    if (!specs || !target || target.healthy === healthy) return this.#snapshots.get(service);
    return this.replace(service, specs.map((spec) => (spec === target ? { ...spec, healthy } : spec)));
  }

  /** Breaker overlay: an ejected instance is unhealthy for tiers and balancing until readmitted. */
  setEjected(service: string, id: string, ejected: boolean): void {
    if (this.#ejected.has(id) === ejected) return;
    if (ejected) this.#ejected.add(id);
    else this.#ejected.delete(id);
    if (this.#specs.has(service)) this.#publish(service);
  }

  isEjected(id: string): boolean {
    return this.#ejected.has(id);
  }

  /** Drops services no source provides any more (a reload removed them). */
  retain(services: ReadonlySet<string>): void {
    for (const service of [...this.#snapshots.keys()]) {
      if (services.has(service)) continue;
      this.#snapshots.delete(service);
      this.#specs.delete(service);
      this.emit('removed', service);
    }
  }

  /** A reload may change the topology: every instance's city/region is recomputed. */
  setTopology(topology: Topology): void {
    this.#topology = topology;
    for (const service of [...this.#specs.keys()]) this.#publish(service);
  }

  #publish(service: string): ServiceSnapshot {
    const previous = this.#snapshots.get(service);
    const instances = this.#specs.get(service)!.map((spec) => {
      const ejected = this.#ejected.has(spec.id);
      return toInstance(ejected ? { ...spec, healthy: false } : spec, this.#topology, ejected);
    });
    const snapshot = buildSnapshot(service, instances, ++this.#version);
    this.#snapshots.set(service, snapshot);
    this.emit('change', snapshot, previous);
    return snapshot;
  }
}
