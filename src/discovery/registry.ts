// The one place snapshots live. Sources (static list, Consul watcher) call `replace`; the request path
// calls `snapshot`, a map read of an immutable object swapped in whole.
import { EventEmitter } from 'node:events';
import type { Topology } from '../topology.ts';
import { buildSnapshot, toInstance, type Instance, type InstanceSpec, type ServiceSnapshot } from './instance.ts';

export interface RegistryEvents {
  change: [snapshot: ServiceSnapshot, previous: ServiceSnapshot | undefined];
}

export class Registry extends EventEmitter<RegistryEvents> {
  readonly #snapshots = new Map<string, ServiceSnapshot>();
  #topology: Topology;
  #version = 0;

  constructor(topology: Topology) {
    super();
    this.#topology = topology;
  }

  snapshot(service: string): ServiceSnapshot | undefined {
    return this.#snapshots.get(service);
  }

  services(): IterableIterator<string> {
    return this.#snapshots.keys();
  }

  /** Replaces a service's whole instance list and publishes a new snapshot. */
  replace(service: string, specs: readonly InstanceSpec[]): ServiceSnapshot {
    return this.#publish(service, specs.map((spec) => toInstance(spec, this.#topology)));
  }

  /** Flips discovery health of one instance (static registry, tests, admin); a no-op when unchanged. */
  setHealthy(service: string, id: string, healthy: boolean): ServiceSnapshot | undefined {
    const current = this.#snapshots.get(service);
    const target = current?.instances.find((i) => i.id === id);
    if (!current || !target || target.healthy === healthy) return current;
    const instances = current.instances.map((i): Instance => (i === target ? Object.freeze({ ...i, healthy }) : i));
    return this.#publish(service, instances);
  }

  /** Drops services no source provides any more (a reload removed them). */
  retain(services: ReadonlySet<string>): void {
    for (const service of [...this.#snapshots.keys()]) if (!services.has(service)) this.#snapshots.delete(service);
  }

  /** A reload may change the topology: every instance's city/region is recomputed. */
  setTopology(topology: Topology): void {
    this.#topology = topology;
    for (const snapshot of [...this.#snapshots.values()]) this.replace(snapshot.service, snapshot.instances);
  }

  #publish(service: string, instances: readonly Instance[]): ServiceSnapshot {
    const previous = this.#snapshots.get(service);
    const snapshot = buildSnapshot(service, instances, ++this.#version);
    this.#snapshots.set(service, snapshot);
    this.emit('change', snapshot, previous);
    return snapshot;
  }
}
