// "Which route, tier and instance would serve this request, and why": the same rules the request path
// uses (route table, chooseService, judgeStep, rendezvous / P2C), reported step by step.
// Backs `zonegate explain` and the admin listener's /admin/explain.
import type { CertificateChoice, CertificateSet } from '../listener/certificates.ts';
import type { CallerLocality } from '../listener/locality.ts';
import { hostWithoutPort, RefusedPath, splitTarget, type EscapedSlashes } from '../listener/target.ts';
import type { Locality } from '../topology.ts';
import { hashKey } from './hash.ts';
import { chooseService, judgeStep, pickInTier, type StepVerdict, type Upstreams } from './pick.ts';
import type { RouteTable } from './route-table.ts';
import type { TierLabel } from './tiers.ts';

export interface ExplainQuery {
  readonly path: string;
  readonly method?: string;
  readonly host?: string;
  readonly region?: string;
  /** the sticky key the request would carry */
  readonly key?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

export interface TierReport {
  readonly tier: TierLabel;
  readonly scope: string;
  readonly healthy: number;
  readonly registered: number;
  readonly verdict: StepVerdict;
  readonly reason: string;
}

export interface Explanation {
  readonly method: string;
  readonly path: string;
  readonly route: string | null;
  readonly service: string | null;
  readonly caller: Locality & { readonly fromHeader: boolean };
  readonly balancing: 'sticky' | 'least-request' | null;
  readonly tiers: readonly TierReport[];
  readonly instance: { readonly id: string; readonly address: string; readonly zone: string; readonly tier: TierLabel } | null;
  readonly outcome: string;
  /** with gateway.tls: the certificate a handshake for the host (its SNI) gets; no host, the default */
  readonly certificate?: CertificateChoice;
}

// The counts are reported beside the reason (TierReport.healthy / .registered), so reasons leave them out.
const REASONS: Record<StepVerdict, (threshold: number) => string> = {
  eligible: (threshold) => `healthy share at or above the ${threshold} threshold`,
  'no-healthy-instance': () => 'no healthy instance',
  'below-threshold': (threshold) => `healthy share below the ${threshold} threshold`,
  'remote-never': () => 'route has locality.remote: never',
  'remote-write': () => 'remote tier serves GET/HEAD/OPTIONS only (locality.remote: read-only)',
};

export interface ExplainContext {
  readonly routes: RouteTable;
  readonly callers: CallerLocality;
  readonly upstreams: Upstreams;
  /** `gateway.escapedSlashes`; default unescape */
  readonly escapedSlashes?: EscapedSlashes;
  /** the HTTPS listener's certificates, when it has one */
  readonly certificates?: CertificateSet | undefined;
}

export function explain(context: ExplainContext, query: ExplainQuery): Explanation {
  const explanation = explainRouting(context, query);
  if (context.certificates === undefined) return explanation;
  const host = query.host === undefined ? undefined : hostWithoutPort(query.host);
  return { ...explanation, certificate: context.certificates.choose(host || undefined) };
}

function explainRouting(context: ExplainContext, query: ExplainQuery): Explanation {
  const method = (query.method ?? 'GET').toUpperCase();
  const headers = Object.fromEntries(Object.entries(query.headers ?? {}).map(([k, v]) => [k.toLowerCase(), v]));
  const resolved = context.callers.preview(query.region ?? null);
  const caller = { ...resolved, fromHeader: query.region !== undefined && resolved !== context.callers.home };
  // the path as a request would be routed: normalised, without its query
  const originForm = query.path.startsWith('/');
  const target = originForm ? splitTarget(query.path, context.escapedSlashes ?? 'unescape') : undefined;
  const normalised = target instanceof RefusedPath ? undefined : target;
  const base = { method, path: normalised?.path ?? query.path, caller, tiers: [] as TierReport[], instance: null };
  if (!originForm) return { ...base, route: null, service: null, balancing: null, outcome: '400 bad_request (the path must start with /)' };
  if (target instanceof RefusedPath) return { ...base, route: null, service: null, balancing: null, outcome: `400 bad_request (${target.message})` };
  const { path } = target!;
  const route = context.routes.match({ method, host: hostWithoutPort(query.host ?? ''), path, headers });
  if (route === undefined) return { ...base, route: null, service: null, balancing: null, outcome: '404 route_not_found' };

  // an empty key is no key, as on the request path
  const keyHash = route.config.sticky && query.key ? hashKey(query.key) : undefined;
  const balancing = keyHash === undefined ? 'least-request' : 'sticky';
  const service = chooseService(route, keyHash);
  const snapshot = context.upstreams.registry.snapshot(service);
  const named = { ...base, route: route.name, service, balancing } as const;
  // The request path answers "no tier can serve" with the route's fallback when it has one; a remote write is refused.
  const refused = (code: string): string =>
    route.config.fallback && code === 'no_healthy_upstream' ? `${route.config.fallback.status} fallback (instead of 503 ${code})` : `503 ${code}`;
  if (snapshot === undefined) return { ...named, outcome: `${refused('no_healthy_upstream')} (no snapshot of ${service} yet)` };

  const threshold = route.config.locality.failoverThreshold;
  const tiers: TierReport[] = [];
  for (const step of context.upstreams.tiers.of(snapshot).plan(resolved)) {
    const { healthy, registered } = step.group;
    const verdict = judgeStep(step, route.config.locality, method);
    const reason = REASONS[verdict](threshold);
    tiers.push({ tier: step.label, scope: step.scope, healthy: healthy.length, registered, verdict, reason });
    if (verdict === 'remote-write') return { ...named, tiers, outcome: refused('remote_write_refused') };
    if (verdict !== 'eligible') continue;
    const instance = pickInTier(step.group, keyHash, context.upstreams.inFlight)!.item;
    return {
      ...named,
      tiers,
      instance: { id: instance.id, address: instance.address, zone: instance.zone, tier: step.label },
      outcome: `forwarded to ${instance.id} (${step.label} tier)`,
    };
  }
  return { ...named, tiers, outcome: refused('no_healthy_upstream') };
}

/** The explanation as the CLI prints it. */
export function formatExplanation(e: Explanation): string {
  const lines = [
    `request   ${e.method} ${e.path}`,
    `caller    ${e.caller.kind} ${e.caller.name} (${[e.caller.zone, e.caller.city, e.caller.region].filter(Boolean).join(' / ')})${e.caller.fromHeader ? ' from X-Region-ID' : ' — the gateway zone'}`,
    `route     ${e.route ?? '(none)'}`,
  ];
  if (e.service !== null) lines.push(`service   ${e.service}`, `balancing ${e.balancing === 'sticky' ? 'sticky key (rendezvous hash)' : 'least request (power of two choices)'}`);
  if (e.tiers.length > 0) lines.push('tiers');
  for (const t of e.tiers) {
    const mark = t.verdict === 'eligible' ? '✓' : '✗';
    const counts = `${t.healthy}/${t.registered} healthy`;
    lines.push(`  ${mark} ${t.tier.padEnd(6)} ${t.scope.padEnd(28)} ${counts.padEnd(14)} ${t.reason}`);
  }
  if (e.instance) lines.push(`instance  ${e.instance.id} at ${e.instance.address}, zone ${e.instance.zone}`);
  if (e.certificate) {
    const { match, certificate: c } = e.certificate;
    lines.push(`tls cert  ${c.subject} from ${c.certFile} (${c.entry}, ${match === 'default' ? 'the default' : `${match} name`}; valid until ${c.validTo})`);
  }
  lines.push(`outcome   ${e.outcome}`);
  return lines.join('\n');
}
