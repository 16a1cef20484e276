// Rules that span several parts of the config, run once the schema has accepted every part on its own.
import { isIP } from 'node:net';
import { staticSpecs } from '../discovery/static.ts';
import { certificateIssues } from '../listener/certificates.ts';
import { upstreamTlsIssues } from '../proxy/upstream-tls.ts';
import { rateLimitBurst, type Config, type HostPort, type RateLimitConfig } from './schema.ts';
import { formatConfigPath } from './errors.ts';
import type { ConfigPath, ConfigPathIssue } from './errors.ts';

export function crossCheck(config: Config): ConfigPathIssue[] {
  return [...checkTopology(config), ...checkZonesExist(config), ...checkInstanceIds(config), ...checkRoutes(config), ...checkAdmin(config), ...checkListeners(config), ...certificateIssues(config.gateway.tls), ...upstreamTlsIssues(config.discovery)];
}

type PlaceKind = 'region' | 'city' | 'zone';

interface Place {
  readonly kind: PlaceKind;
  readonly name: string;
  /** the region of a city, the city of a zone */
  readonly parent?: string;
  readonly path: ConfigPath;
}

/** X-Region-ID resolves a name case-insensitively to one zone, city or region, so every name must be unique. */
function checkTopology(config: Config): ConfigPathIssue[] {
  const issues: ConfigPathIssue[] = [];
  const seen = new Map<string, Place>();
  const claim = (place: Place): void => {
    const first = seen.get(place.name.toLowerCase());
    if (!first) {
      seen.set(place.name.toLowerCase(), place);
      return;
    }
    issues.push({ path: place.path, atKey: place.kind !== 'zone', message: clashMessage(place, first) });
  };
  for (const [region, cities] of Object.entries(config.topology)) {
    claim({ kind: 'region', name: region, path: ['topology', region] });
    for (const [city, zones] of Object.entries(cities)) {
      claim({ kind: 'city', name: city, parent: region, path: ['topology', region, city] });
      zones.forEach((zone, index) => claim({ kind: 'zone', name: zone, parent: city, path: ['topology', region, city, index] }));
    }
  }
  return issues;
}

function clashMessage(place: Place, first: Place): string {
  const caseNote = place.name === first.name ? '' : ` (names are case-insensitive: it clashes with "${first.name}")`;
  if (place.kind === 'zone' && first.kind === 'zone') {
    return place.parent === first.parent
      ? `zone "${place.name}" is listed twice in city ${place.parent}${caseNote}`
      : `zone "${place.name}" is listed in two cities: ${first.parent} and ${place.parent}${caseNote}`;
  }
  if (place.kind === 'city' && first.kind === 'city') {
    return `city "${place.name}" is listed in two regions: ${first.parent} and ${place.parent}${caseNote}`;
  }
  return (
    `"${place.name}" is both ${describePlace(first)} and ${describePlace(place)}, ` +
    `so X-Region-ID: ${place.name} would be ambiguous${caseNote}`
  );
}

function describePlace(place: Place): string {
  if (place.kind === 'region') return 'a region';
  return place.kind === 'city' ? `a city in region ${place.parent}` : `a zone in city ${place.parent}`;
}

function checkZonesExist(config: Config): ConfigPathIssue[] {
  const zones = new Set(Object.values(config.topology).flatMap((cities) => Object.values(cities).flat()));
  const unknownZone = (zone: string, path: ConfigPath): ConfigPathIssue[] =>
    zones.has(zone) ? [] : [{ path, message: `zone "${zone}" is not in topology (known zones: ${[...zones].join(', ')})` }];
  const issues = unknownZone(config.gateway.zone, ['gateway', 'zone']);
  for (const [service, instances] of Object.entries(config.discovery.static)) {
    instances.forEach((instance, index) => issues.push(...unknownZone(instance.zone, ['discovery', 'static', service, index, 'zone'])));
  }
  return issues;
}

interface InstanceRef {
  readonly service: string;
  readonly index: number;
  readonly explicit: boolean;
}

/**
 * Circuit breakers and connection pools are kept per instance id, so two instances sharing one would share a
 * breaker: failures in one service would eject the other's instance. The ids are derived as discovery derives them.
 */
function checkInstanceIds(config: Config): ConfigPathIssue[] {
  const issues: ConfigPathIssue[] = [];
  const firstWithId = new Map<string, InstanceRef>();
  for (const [service, entries] of Object.entries(config.discovery.static)) {
    staticSpecs(service, entries).forEach((spec, index) => {
      const instance: InstanceRef = { service, index, explicit: entries[index]!.id !== undefined };
      const first = firstWithId.get(spec.id);
      if (first === undefined) {
        firstWithId.set(spec.id, instance);
        return;
      }
      const path = ['discovery', 'static', service, index, instance.explicit ? 'id' : 'address'];
      issues.push({ path, message: instanceClashMessage(spec.id, instance, first) });
    });
  }
  return issues;
}

function instanceClashMessage(id: string, instance: InstanceRef, first: InstanceRef): string {
  const where = formatConfigPath(['discovery', 'static', first.service, first.index]);
  if (!instance.explicit && !first.explicit) {
    const address = id.slice(instance.service.length + 1);
    return `${address} is listed twice for service ${instance.service} (also ${where}); give each an id if both are meant to be there`;
  }
  const derived = first.explicit ? '' : ', derived from its service and address';
  return `instance id "${id}" is already the id of ${where}${derived}; ids must be unique, as each instance has its own circuit breaker`;
}

function checkRoutes(config: Config): ConfigPathIssue[] {
  const issues: ConfigPathIssue[] = [];
  const firstRouteNamed = new Map<string, number>();
  config.routes.forEach((route, index) => {
    const path = ['routes', index];
    const first = firstRouteNamed.get(route.name);
    if (first === undefined) firstRouteNamed.set(route.name, index);
    else issues.push({ path: [...path, 'name'], message: `duplicate route name "${route.name}" (also ${formatConfigPath(['routes', first])})` });

    if (route.service !== undefined) issues.push(...checkServiceKnown(config, route.service, [...path, 'service']));
    if (route.match.clientCert !== undefined && config.gateway.tls?.clientCa === undefined) {
      const message = 'match.clientCert needs gateway.tls.clientCa: without mutual TLS no request carries a verified client certificate';
      issues.push({ path: [...path, 'match', 'clientCert'], atKey: true, message });
    }
    route.weighted?.forEach((entry, i) => issues.push(...checkServiceKnown(config, entry.service, [...path, 'weighted', i, 'service'])));

    const { rateLimit, retries, timeout } = route;
    if (rateLimit !== undefined) issues.push(...checkBurst(rateLimit, [...path, 'rateLimit']));
    if (retries.perTryTimeout !== undefined && retries.perTryTimeout > timeout) {
      issues.push({
        path: [...path, 'retries', 'perTryTimeout'],
        message: `perTryTimeout ${formatDuration(retries.perTryTimeout)} is longer than the route timeout ${formatDuration(timeout)}`,
      });
    }
  });
  return issues;
}

/** A bucket smaller than one request's cost would refuse every request. */
function checkBurst(rateLimit: RateLimitConfig, path: ConfigPath): ConfigPathIssue[] {
  const burst = rateLimitBurst(rateLimit);
  if (burst >= rateLimit.cost) return [];
  if (rateLimit.burst === undefined) {
    const message = `cost ${rateLimit.cost} is larger than the default burst ${burst} (one second of ${rateLimit.rate.text}), so no request could ever pass; set burst`;
    return [{ path: [...path, 'cost'], message }];
  }
  return [{ path: [...path, 'burst'], message: `burst ${burst} is smaller than cost ${rateLimit.cost}, so no request could ever pass` }];
}

function checkServiceKnown(config: Config, service: string, path: ConfigPath): ConfigPathIssue[] {
  const { consul, static: registry } = config.discovery;
  // with Consul the catalog is only known at run time
  if (consul !== undefined || Object.hasOwn(registry, service)) return [];
  const known = Object.keys(registry);
  const hint = known.length > 0 ? `known services: ${known.join(', ')}` : 'discovery.static is empty and discovery.consul is not set';
  return [{ path, message: `unknown service "${service}": not in discovery.static (${hint})` }];
}

export function checkAdmin(config: Config): ConfigPathIssue[] {
  const { admin, adminToken } = config.gateway;
  if (adminToken !== '' || isLoopback(admin.host)) return [];
  const where = admin.host === '' ? 'all interfaces' : admin.host;
  return [
    {
      path: ['gateway', 'admin'],
      message: `the admin listener on ${where} is reachable from other hosts: set gateway.adminToken or listen on 127.0.0.1`,
    },
  ];
}

/** Whether listeners on `a` and `b` would claim the same addresses: `''` and `::` take both families, 0.0.0.0 IPv4's. */
function addressesOverlap(a: string, b: string): boolean {
  if (a === b || a === '' || b === '' || a === '::' || b === '::') return true;
  return (a === '0.0.0.0' && isIP(b) !== 6) || (b === '0.0.0.0' && isIP(a) !== 6);
}

/** The proxy and admin listeners cannot share a port: the second would fail to bind when the gateway starts. */
function checkListeners(config: Config): ConfigPathIssue[] {
  const { listen, admin, tls } = config.gateway;
  // port 0 asks the system for a free port: never the same one twice
  const clash = (a: HostPort, b: HostPort): boolean => a.port !== 0 && a.port === b.port && addressesOverlap(a.host, b.host);
  const issues: ConfigPathIssue[] = [];
  if (clash(listen, admin)) issues.push({ path: ['gateway', 'admin'], message: `port ${admin.port} is also gateway.listen's: the admin listener needs a port of its own` });
  for (const [other, name] of [[listen, 'gateway.listen'], [admin, 'gateway.admin']] as const) {
    if (tls !== undefined && clash(tls.listen, other)) {
      issues.push({ path: ['gateway', 'tls', 'listen'], message: `port ${tls.listen.port} is also ${name}'s: the HTTPS listener needs a port of its own` });
    }
  }
  return issues;
}

/** A loopback host, as a config or a URL writes it (`::1` also in brackets, IPv4-mapped 127/8). */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host === '[::1]' || /^(?:::ffff:)?127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(host);
}

/** Milliseconds back in the units a user writes (`2s`, `1m`, `250ms`). */
function formatDuration(ms: number): string {
  if (ms >= 60_000 && ms % 60_000 === 0) return `${ms / 60_000}m`;
  if (ms >= 1000 && ms % 1000 === 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
