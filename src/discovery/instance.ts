// What discovery hands to routing: immutable instances and per-service snapshots.
// Every source (static list, Consul) only produces InstanceSpec lists; snapshots are built here,
// off the request path, with everything the balancer needs precomputed.
import type { Topology } from '../topology.ts';

export interface InstanceSpec {
  readonly id: string;
  readonly service: string;
  readonly host: string;
  readonly port: number;
  readonly zone: string;
  readonly weight: number;
  readonly tags: readonly string[];
  readonly meta: Readonly<Record<string, string>>;
  /** discovery's own verdict (checks passing); breakers are layered on top, not written here */
  readonly healthy: boolean;
  readonly datacenter?: string;
  /** the instance speaks TLS (static `tls`); Consul says so by tag `tls` or meta `tls=true` */
  readonly tls?: boolean;
}

export interface Instance extends InstanceSpec {
  /** `http://host:port` (`https://` for an instance that speaks TLS), the key of its connection pool */
  readonly origin: string;
  /** `host:port` as the access log shows it */
  readonly address: string;
  /** undefined when the zone is not in the topology: such an instance is always remote */
  readonly city: string | undefined;
  readonly region: string | undefined;
  /** its breaker is open: `healthy` is false whatever discovery says */
  readonly ejected: boolean;
}

export interface ServiceSnapshot {
  readonly service: string;
  /** increases on every rebuild of this service's snapshot */
  readonly version: number;
  readonly builtAt: number;
  readonly instances: readonly Instance[];
  readonly healthy: readonly Instance[];
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export function speaksTls(spec: InstanceSpec): boolean {
  return spec.tls === true || spec.tags.includes('tls') || spec.meta.tls === 'true';
}

export function toInstance(spec: InstanceSpec, topology: Topology, ejected = false): Instance {
  const place = topology.zone(spec.zone);
  const address = formatAddress(spec.host, spec.port);
  return Object.freeze({
    ...spec,
    ejected,
    tags: Object.freeze([...spec.tags]),
    meta: Object.freeze({ ...spec.meta }),
    address,
    origin: `${speaksTls(spec) ? 'https' : 'http'}://${address}`,
    city: place?.city,
    region: place?.region,
  });
}

export function buildSnapshot(service: string, instances: readonly Instance[], version: number): ServiceSnapshot {
  const sorted = Object.freeze([...instances].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
  return Object.freeze({
    service,
    version,
    builtAt: Date.now(),
    instances: sorted,
    healthy: Object.freeze(sorted.filter((i) => i.healthy)),
  });
}
