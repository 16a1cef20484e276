// Chooses the service and the instance for a routed request: weighted service split, then the first
// eligible locality tier, then rendezvous (sticky key) or power of two choices (no key) inside it.
// `judgeStep` is the one eligibility rule; `explain` reports with it too.
import type { Instance } from '../discovery/instance.ts';
import { Registry } from '../discovery/registry.ts';
import type { RouteConfig } from '../config/schema.ts';
import type { Locality, Topology } from '../topology.ts';
import { LeastRequestPicker, rendezvous, weightedRandom, type Member } from './balancer.ts';
import { InFlight } from './in-flight.ts';
import type { CompiledRoute } from './route-table.ts';
import { TierIndexes, type TierLabel, type TierStep } from './tiers.ts';

const READ_ONLY_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export type StepVerdict = 'eligible' | 'no-healthy-instance' | 'below-threshold' | 'remote-never' | 'remote-write';

export function judgeStep(step: TierStep, locality: RouteConfig['locality'], method: string): StepVerdict {
  const { healthy, registered } = step.group;
  if (step.label === 'remote' && locality.remote === 'never') return 'remote-never';
  if (healthy.length === 0) return 'no-healthy-instance';
  // The share itself, not threshold × registered: 0.28 × 25 rounds to 7.000000000000001, which would
  // refuse 7 healthy of 25, while 7 / 25 rounds to exactly the number 0.28 parses to.
  if (healthy.length / registered < locality.failoverThreshold) return 'below-threshold';
  if (step.label === 'remote' && locality.remote === 'read-only' && !READ_ONLY_METHODS.has(method)) return 'remote-write';
  return 'eligible';
}

export interface UpstreamRequest {
  readonly method: string;
  readonly caller: Locality;
  /** hashKey(sticky key), or undefined when the request carries none */
  readonly keyHash: number | undefined;
  /** a retry stays on the service of the first attempt */
  readonly service?: string;
  /** instances already tried by this request: a retry goes elsewhere */
  readonly exclude?: ReadonlySet<string>;
}

export type UpstreamChoice =
  | { readonly service: string; readonly instance: Instance; readonly tier: TierLabel }
  | { readonly service: string; readonly instance: undefined; readonly refusal: 'no_healthy_upstream' | 'remote_write_refused' };

export interface Upstreams {
  readonly registry: Registry;
  readonly tiers: TierIndexes;
  readonly inFlight: InFlight;
}

/** A registry whose every published snapshot gets its tier index built right away, off the request path. */
export function createUpstreams(topology: Topology): Upstreams {
  const registry = new Registry(topology);
  const tiers = new TierIndexes(topology);
  registry.on('change', (snapshot) => tiers.build(snapshot));
  return { registry, tiers, inFlight: new InFlight() };
}

export function chooseService(route: CompiledRoute, keyHash: number | undefined): string {
  const split = route.split;
  if (split.list.length === 1) return split.list[0]!.item;
  return (keyHash === undefined ? weightedRandom(split) : rendezvous(split.list, keyHash))!.item;
}

export function chooseUpstream(route: CompiledRoute, request: UpstreamRequest, upstreams: Upstreams): UpstreamChoice {
  const service = request.service ?? chooseService(route, request.keyHash);
  const snapshot = upstreams.registry.snapshot(service);
  if (snapshot === undefined) return { service, instance: undefined, refusal: 'no_healthy_upstream' };
  const locality = route.config.locality;
  for (const step of upstreams.tiers.of(snapshot).plan(request.caller)) {
    const verdict = judgeStep(step, locality, request.method);
    if (verdict === 'remote-write') return { service, instance: undefined, refusal: 'remote_write_refused' };
    if (verdict !== 'eligible') continue;
    const member = request.exclude?.size ? pickExcluding(step.group.members, request, upstreams) : pickInTier(step.group, request.keyHash, upstreams.inFlight);
    if (member === undefined) continue; // every healthy instance of this tier was already tried
    return { service, instance: member.item, tier: step.label };
  }
  return { service, instance: undefined, refusal: 'no_healthy_upstream' };
}

/** The instance of an eligible tier: rendezvous on the sticky key, else power of two choices on in-flight load. */
export function pickInTier(group: TierStep['group'], keyHash: number | undefined, inFlight: InFlight): Member<Instance> | undefined {
  return keyHash === undefined ? group.picker.pick(inFlight.load) : rendezvous(group.members, keyHash);
}

/** Retries only: the tier minus the instances already tried (a sticky key then lands on its next choice). */
function pickExcluding(list: readonly Member<Instance>[], request: UpstreamRequest, upstreams: Upstreams): Member<Instance> | undefined {
  const rest = list.filter((m) => !request.exclude!.has(m.item.id));
  if (rest.length === 0) return undefined;
  return request.keyHash === undefined ? new LeastRequestPicker(rest).pick(upstreams.inFlight.load) : rendezvous(rest, request.keyHash);
}
