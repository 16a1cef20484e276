// TLS to instances: `discovery.tls.<service>` and a static instance's own `tls`. Files are read when a config is
// applied (and checked by `validate`); each TLS instance's pool is built with the settings that apply to it. The
// instance's certificate is always verified: there is no setting that turns verification off.
import { createHash } from 'node:crypto';
import type { ConfigPath, ConfigPathIssue } from '../config/errors.ts';
import type { DiscoveryConfig, UpstreamTlsConfig } from '../config/schema.ts';
import type { Instance } from '../discovery/instance.ts';
import type { Registry } from '../discovery/registry.ts';
import { certificateProblems, readCaBundle, readKeyPair } from '../listener/certificates.ts';

/** What undici's connector takes for one instance, plus whether HTTP/2 is offered. */
export interface UpstreamConnectTls {
  readonly ca?: Buffer;
  readonly servername?: string;
  readonly cert?: Buffer;
  readonly key?: Buffer;
  readonly h2: boolean;
  /** a digest of all of the above: a pool is rebuilt when its instance's settings or their files change */
  readonly digest: string;
}

const DEFAULTS: UpstreamConnectTls = { h2: false, digest: 'defaults' };

function load(tls: UpstreamTlsConfig, path: ConfigPath, now: number): UpstreamConnectTls {
  const pair = tls.cert !== undefined && tls.key !== undefined ? readKeyPair({ cert: tls.cert, key: tls.key }, path, now) : undefined;
  const ca = tls.ca === undefined ? undefined : readCaBundle(tls.ca, [...path, 'ca']);
  const digest = createHash('sha256');
  for (const part of [ca, tls.servername, pair?.certPem, pair?.keyPem, String(tls.h2)]) digest.update(part ?? '-').update('\0');
  return {
    ...(ca === undefined ? {} : { ca }),
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    ...(pair === undefined ? {} : { cert: pair.certPem, key: pair.keyPem }),
    h2: tls.h2,
    digest: digest.digest('hex'),
  };
}

/** Every TLS setting of a config, its files read: one object per applied config. */
export class UpstreamTlsSettings {
  readonly #byService = new Map<string, UpstreamConnectTls>();
  /** `service host:port` → a static instance's own settings */
  readonly #byInstance = new Map<string, UpstreamConnectTls>();

  constructor(discovery: DiscoveryConfig, now = Date.now()) {
    for (const [service, tls] of Object.entries(discovery.tls)) this.#byService.set(service, load(tls, ['discovery', 'tls', service], now));
    for (const [service, entries] of Object.entries(discovery.static)) {
      entries.forEach((entry, index) => {
        if (typeof entry.tls !== 'object') return;
        const key = `${service} ${entry.address.host}:${entry.address.port}`;
        this.#byInstance.set(key, load(entry.tls, ['discovery', 'static', service, index, 'tls'], now));
      });
    }
  }

  /** Whether `service` is listed in discovery.tls: its instances are expected to speak TLS. */
  listed(service: string): boolean {
    return this.#byService.has(service);
  }

  /** The settings of an instance that speaks TLS: its own, else its service's, else the system CAs and its host. */
  forInstance(instance: Instance): UpstreamConnectTls {
    return this.#byInstance.get(`${instance.service} ${instance.host}:${instance.port}`) ?? this.#byService.get(instance.service) ?? DEFAULTS;
  }
}

/**
 * The settings of every registered instance that speaks TLS, by origin (what the pools are keyed by). `onPlain` hears
 * of each instance of a service listed in discovery.tls that speaks plain HTTP (a Consul instance registered without
 * the tag or meta): its registration says so, and the gateway does not guess.
 */
export function tlsByOrigin(registry: Registry, settings: UpstreamTlsSettings, onPlain: (instance: Instance) => void): Map<string, UpstreamConnectTls> {
  const byOrigin = new Map<string, UpstreamConnectTls>();
  for (const service of registry.services()) {
    for (const instance of registry.snapshot(service)!.instances) {
      if (instance.origin.startsWith('https:')) byOrigin.set(instance.origin, settings.forInstance(instance));
      else if (settings.listed(service)) onPlain(instance);
    }
  }
  return byOrigin;
}

/** `validate`'s view: each unreadable or unusable file at the entry that names it. */
export function upstreamTlsIssues(discovery: DiscoveryConfig, now = Date.now()): ConfigPathIssue[] {
  const checks: (() => unknown)[] = Object.entries(discovery.tls).map(([service, tls]) => () => load(tls, ['discovery', 'tls', service], now));
  for (const [service, entries] of Object.entries(discovery.static)) {
    entries.forEach((entry, index) => {
      const tls = entry.tls;
      if (typeof tls === 'object') checks.push(() => load(tls, ['discovery', 'static', service, index, 'tls'], now));
    });
  }
  return [...certificateProblems(checks), ...sharedAddressIssues(discovery)];
}

/** Pools are kept per address: one address reached with two different TLS settings would get either. */
function sharedAddressIssues(discovery: DiscoveryConfig): ConfigPathIssue[] {
  const issues: ConfigPathIssue[] = [];
  const first = new Map<string, { where: string; settings: string }>();
  for (const [service, entries] of Object.entries(discovery.static)) {
    entries.forEach((entry, index) => {
      const listed = discovery.tls[service];
      if (entry.tls === undefined && listed === undefined) return;
      const settings = JSON.stringify(typeof entry.tls === 'object' ? entry.tls : (listed ?? {}));
      const address = `${entry.address.host}:${entry.address.port}`;
      const seen = first.get(address);
      const where = `discovery.static.${service}[${index}]`;
      if (seen === undefined) first.set(address, { where, settings });
      else if (seen.settings !== settings) {
        const message = `${address} is also ${seen.where} with other TLS settings: one address is reached with one set of TLS settings`;
        issues.push({ path: ['discovery', 'static', service, index, 'address'], message });
      }
    });
  }
  return issues;
}
