// `discovery.static`: the embedded registry when Consul is not configured.
import type { DiscoveryConfig } from '../config/schema.ts';
import type { InstanceSpec } from './instance.ts';
import type { Registry } from './registry.ts';

/** `tlsService`: the service is listed in discovery.tls, so every instance of it speaks TLS */
export function staticSpecs(service: string, entries: DiscoveryConfig['static'][string], tlsService = false): InstanceSpec[] {
  return entries.map((entry) => ({
    id: entry.id ?? `${service}@${entry.address.host}:${entry.address.port}`,
    service,
    host: entry.address.host,
    port: entry.address.port,
    zone: entry.zone,
    weight: entry.weight,
    tags: entry.tags,
    meta: entry.meta,
    healthy: entry.healthy,
    tls: tlsService || entry.tls !== undefined,
  }));
}

/** Publishes every static service into the registry. */
export function loadStatic(registry: Registry, config: DiscoveryConfig): void {
  for (const [service, entries] of Object.entries(config.static)) registry.replace(service, staticSpecs(service, entries, Object.hasOwn(config.tls, service)));
}
