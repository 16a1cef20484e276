// One drill: for each scenario, a fresh gateway, the steady load, and three phases: before the fault, during it,
// after its repair. What clients saw is measured from the load's samples; when traffic left the failed part and
// came back, from the simulated instances' own arrivals.
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { adminInstances, portOf } from './admin-client.ts';
import type { Fleet } from './fleet.ts';
import { SteadyLoad, type Sample } from './load.ts';
import { measure, type Measurement, type Phases } from './measure.ts';
import { DRILL_HEADER, type Injected, type Scenario } from './scenarios.ts';

export interface DrillOptions {
  /** requests per second of the steady load */
  readonly rate: number;
  readonly beforeMs: number;
  readonly duringMs: number;
  readonly afterMs: number;
  readonly path: string;
  readonly method: string;
  /** X-Region-ID of the load, if any */
  readonly region?: string;
  /** the load's own limit on one request */
  readonly timeoutMs: number;
}

export interface ScenarioResult {
  readonly name: string;
  readonly description: string;
  /** why it did not run (unavailable here) */
  readonly skipped?: string;
  /** why it could not be carried out (it counts as not met) */
  readonly failedToRun?: string;
  /** what failed: an instance, a zone, a city, a dependency */
  readonly what?: string;
  readonly phases?: Phases;
  readonly measurement?: Measurement;
}

/** The value seen most often, or undefined. */
function mostCommon(values: Iterable<string | null>): string | undefined {
  const counts = new Map<string, number>();
  for (const value of values) if (value !== null) counts.set(value, (counts.get(value) ?? 0) + 1);
  let best: string | undefined;
  for (const [value, count] of counts) if (best === undefined || count > counts.get(best)!) best = value;
  return best;
}

export async function runScenario(fleet: Fleet, scenario: Scenario, options: DrillOptions): Promise<ScenarioResult> {
  const base = { name: scenario.name, description: scenario.description };
  const skipped = scenario.unavailable(fleet);
  if (skipped !== undefined) return { ...base, skipped };
  const gateway = await fleet.gateway();
  const drillId = randomUUID();
  let injected: Injected | undefined;
  let load: SteadyLoad | undefined;
  try {
    const headers: Record<string, string> = { [DRILL_HEADER]: drillId };
    if (options.region !== undefined) headers['x-region-id'] = options.region;
    load = new SteadyLoad({ origin: gateway.origin, path: options.path, method: options.method, headers, rate: options.rate, timeoutMs: options.timeoutMs });
    const epoch = performance.timeOrigin + load.startedAt;
    await sleep(options.beforeMs);
    const served = load.samples.filter((sample) => sample.status > 0 && sample.status < 400);
    const topUpstream = mostCommon(served.map((sample) => sample.upstream));
    const placement = await adminInstances(gateway.admin);
    const view = placement.find((instance) => instance.id === topUpstream);
    const instance = view && fleet.instances.find((candidate) => candidate.port === portOf(view.address));
    const context = {
      fleet,
      gateway,
      target: view && instance ? { view, instance } : undefined,
      placement,
      route: mostCommon(served.map((sample) => sample.route)),
      path: options.path,
      drillId,
    };
    const faultAt = load.now();
    injected = await scenario.inject(context);
    await sleep(options.duringMs);
    const repairAt = load.now();
    const repairing = injected;
    injected = undefined;
    await repairing.repair();
    await sleep(options.afterMs);
    const endAt = load.now();
    const samples: Sample[] = await load.stop();
    load = undefined;
    const phases = { faultAt, repairAt, endAt };
    // the instances' clocks are ms since the epoch; the load's, ms since it started
    const arrivals = (await Promise.all(repairing.failed.map((failed) => failed.arrivals(epoch)))).flat().map((at) => at - epoch).sort((a, b) => a - b);
    const failed = repairing.failed.length > 0 ? { arrivals } : undefined;
    return { ...base, what: repairing.what, phases, measurement: measure(samples, phases, failed) };
  } catch (err) {
    return { ...base, failedToRun: err instanceof Error ? err.message : String(err) };
  } finally {
    await injected?.repair().catch(() => {});
    await load?.stop();
    await gateway.release();
  }
}

export async function runDrill(
  fleet: Fleet,
  scenarios: readonly Scenario[],
  options: DrillOptions,
  onResult: (result: ScenarioResult) => void = () => {},
): Promise<ScenarioResult[]> {
  const results: ScenarioResult[] = [];
  for (const scenario of scenarios) {
    const result = await runScenario(fleet, scenario, options);
    results.push(result);
    onResult(result);
  }
  return results;
}
