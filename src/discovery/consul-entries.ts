// A /v1/health/service answer → InstanceSpecs. Nothing Consul sends is trusted: each entry is checked (zod)
// on its own, so one malformed entry is skipped (and reported) while the rest of the answer applies; an
// answer that is not a list at all is refused whole, and the caller keeps its last good snapshot.
import { z } from 'zod';
import type { ConsulConfig } from '../config/schema.ts';
import { describeIssues } from './describe-issues.ts';
import type { InstanceSpec } from './instance.ts';

/** Consul's structs.ServiceAddress, the values of Service.TaggedAddresses */
const serviceAddress = z.object({ Address: z.string(), Port: z.number().int().min(0).max(65535) });

/** The parts of a /v1/health/service entry zonegate reads (Consul API docs, health.mdx); other fields pass. */
const healthEntry = z.object({
  Node: z.object({
    Node: z.string().min(1),
    Address: z.string(),
    TaggedAddresses: z.record(z.string(), z.string()).nullish(),
  }),
  Service: z.object({
    ID: z.string().min(1),
    Service: z.string().min(1),
    Tags: z.array(z.string()).nullish(),
    Address: z.string().nullish(),
    // Consul accepts services without a port (0); there is nothing to proxy to, so such an entry is skipped
    Port: z.number().int().min(1, 'the service has no port').max(65535),
    Meta: z.record(z.string(), z.string()).nullish(),
    Weights: z.object({ Passing: z.number(), Warning: z.number() }).nullish(),
    TaggedAddresses: z.record(z.string(), serviceAddress).nullish(),
  }),
  // Go encodes an empty check list as null: an instance without checks is passing, as Consul's own filters read it
  Checks: z.array(z.object({ CheckID: z.string(), Status: z.string() })).nullable(),
});

export type HealthEntry = z.infer<typeof healthEntry>;

/** An answer that is not a list of entries: the whole answer is refused. */
export class MalformedAnswerError extends Error {}

export interface MappingContext {
  readonly datacenter: string;
  readonly config: Pick<ConsulConfig, 'acceptWarning' | 'zoneMeta' | 'translateWanAddresses' | 'datacenters'>;
}

export interface MappedAnswer {
  readonly specs: InstanceSpec[];
  /** one line per skipped entry: its position and what is wrong with it */
  readonly skipped: string[];
}

/**
 * Consul's weighting (the rule its DNS interface applies): every check passing → Weights.Passing; some warning,
 * none critical → Weights.Warning, where 0 means "send nothing"; anything critical (or a status Consul may add
 * later) → no traffic at all.
 */
function healthAndWeight(entry: HealthEntry, acceptWarning: boolean): { healthy: boolean; weight: number } {
  // Consul always stores weights (nil → {1, 1}) and never a Passing below 1; the fallback covers other servers.
  const passingWeight = entry.Service.Weights && entry.Service.Weights.Passing >= 1 ? entry.Service.Weights.Passing : 1;
  const warningWeight = entry.Service.Weights ? entry.Service.Weights.Warning : 1;
  const statuses = (entry.Checks ?? []).map((check) => check.Status);
  if (statuses.every((status) => status === 'passing')) return { healthy: true, weight: passingWeight };
  const warningOnly = statuses.every((status) => status === 'passing' || status === 'warning');
  if (acceptWarning && warningOnly && warningWeight > 0) return { healthy: true, weight: warningWeight };
  // An instance without traffic keeps a usable weight so it balances normally once it is healthy again.
  return { healthy: false, weight: passingWeight };
}

/**
 * Where the instance is reached from this gateway. Consul's translate_wan_addrs rule for another datacenter: the
 * service's tagged WAN address (with its port) replaces Service.Address, the node's tagged WAN address replaces
 * Node.Address, and Service.Address still wins over the node's when it is set.
 */
export function instanceAddress(entry: HealthEntry, translateWan: boolean): { host: string; port: number } {
  const service = entry.Service;
  if (translateWan) {
    const tagged = service.TaggedAddresses?.['wan'] ?? service.TaggedAddresses?.['wan_ipv4'];
    if (tagged && tagged.Address !== '') return { host: tagged.Address, port: tagged.Port || service.Port };
    const nodeWan = entry.Node.TaggedAddresses?.['wan'] || entry.Node.TaggedAddresses?.['wan_ipv4'];
    return { host: service.Address || nodeWan || entry.Node.Address, port: service.Port };
  }
  return { host: service.Address || entry.Node.Address, port: service.Port };
}

function entryToSpec(entry: HealthEntry, { datacenter, config }: MappingContext): InstanceSpec {
  const service = entry.Service;
  const tags = service.Tags ?? [];
  const meta = service.Meta ?? {};
  const zoneTag = tags.find((tag) => tag.startsWith('zone='));
  const { healthy, weight } = healthAndWeight(entry, config.acceptWarning);
  // the first datacenter listed is the gateway's own: the others are across the WAN
  const remote = datacenter !== config.datacenters[0];
  return {
    // A service ID is unique per agent only (it defaults to the service name): the node makes it unique.
    id: `${entry.Node.Node}/${service.ID}@${datacenter}`,
    service: service.Service,
    ...instanceAddress(entry, remote && config.translateWanAddresses),
    zone: meta[config.zoneMeta] ?? zoneTag?.slice('zone='.length) ?? '',
    weight,
    tags,
    meta,
    healthy,
    datacenter,
  };
}

/** Maps every well-formed entry; throws MalformedAnswerError when the body is not a list. */
export function mapHealthAnswer(body: unknown, context: MappingContext): MappedAnswer {
  if (!Array.isArray(body)) {
    throw new MalformedAnswerError(`the answer is not a list of health entries (${body === null ? 'null' : typeof body})`);
  }
  const specs: InstanceSpec[] = [];
  const skipped: string[] = [];
  body.forEach((item: unknown, position) => {
    const parsed = healthEntry.safeParse(item);
    if (!parsed.success) return void skipped.push(describeIssues(parsed.error, `[${position}]`));
    const spec = entryToSpec(parsed.data, context);
    if (spec.host === '') return void skipped.push(`[${position}]: the service and its node have no address`);
    specs.push(spec);
  });
  return { specs, skipped };
}
