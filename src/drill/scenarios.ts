// The failures a drill rehearses. Each breaks one part of the fleet while the steady load runs and says which
// simulated instances are the failed part (whose traffic must leave, and come back after the repair).
import { clearFault, setFault, type AdminInstance } from './admin-client.ts';
import type { DrillInstance, Fleet, FleetGateway } from './fleet.ts';
import { SlowUploads } from './load.ts';

export interface ScenarioContext {
  readonly fleet: Fleet;
  readonly gateway: FleetGateway;
  /** the instance that served most of the load before the fault, as the fleet and the gateway's admin API see it */
  readonly target: { readonly instance: DrillInstance; readonly view: AdminInstance } | undefined;
  /** every instance the gateway knows (its admin API): where zones and cities are */
  readonly placement: readonly AdminInstance[];
  /** the route that served the load (X-Zonegate-Route) */
  readonly route: string | undefined;
  /** the load's path, and the value of its X-Zonegate-Drill header (a fault scoped to it hits nothing else) */
  readonly path: string;
  readonly drillId: string;
}

export interface Injected {
  /** what failed, in words: an instance id, a zone, a city, a dependency */
  readonly what: string;
  /** the simulated instances that failed (empty when the failed part is no instance) */
  readonly failed: readonly DrillInstance[];
  repair(): Promise<void>;
}

export interface Scenario {
  readonly name: string;
  readonly description: string;
  /** why it cannot run against this fleet, or undefined */
  unavailable(fleet: Fleet): string | undefined;
  inject(context: ScenarioContext): Promise<Injected>;
}

/** slow-uploads: this many clients each trickling a body, one byte every SLOW_UPLOAD_INTERVAL_MS */
const SLOW_UPLOADS = 50;
const SLOW_UPLOAD_INTERVAL_MS = 1000;
export const DRILL_HEADER = 'x-zonegate-drill';

function targetOf(context: ScenarioContext): NonNullable<ScenarioContext['target']> {
  if (context.target === undefined) throw new Error('no simulated instance served the load before the fault');
  return context.target;
}

/** Every simulated instance in `zones`, of every service, killed until the repair. */
async function darken(context: ScenarioContext, zones: readonly string[], what: string): Promise<Injected> {
  const failed = context.fleet.instances.filter((instance) => zones.includes(instance.zone));
  await Promise.all(failed.map((instance) => instance.kill()));
  return { what, failed, repair: async () => void (await Promise.all(failed.map((instance) => instance.restore()))) };
}

/** One instance misbehaving (`act`) until the repair. */
async function onTarget(context: ScenarioContext, act: (target: DrillInstance) => Promise<void>): Promise<Injected> {
  const { instance } = targetOf(context);
  await act(instance);
  return { what: instance.id, failed: [instance], repair: () => instance.restore() };
}

const always = (): undefined => undefined;

type Relay = NonNullable<Fleet['consulRelay']>;

/** A dependency (Consul, Redis) behind its relay stops answering the gateway: connections reset, new ones refused. */
function relayCut(name: string, what: string, relayOf: (fleet: Fleet) => Relay | undefined, needs: string): Scenario {
  return {
    name,
    description: `${what} stops answering the gateway: connections reset, new ones refused`,
    unavailable: (fleet) => (relayOf(fleet) ? undefined : needs),
    inject: async (context) => {
      const relay = relayOf(context.fleet)!;
      await relay.cut();
      return { what, failed: [], repair: () => relay.restore() };
    },
  };
}

export const SCENARIOS: readonly Scenario[] = [
  {
    name: 'instance-killed',
    description: 'the instance serving the load stops: connections reset, new ones refused',
    unavailable: always,
    inject: (context) => onTarget(context, (target) => target.kill()),
  },
  {
    name: 'instance-hanging',
    description: 'the instance serving the load accepts requests and never answers',
    unavailable: always,
    inject: (context) => onTarget(context, (target) => target.hang()),
  },
  {
    name: 'instance-503',
    description: 'the instance serving the load answers 503 to 95% of requests',
    unavailable: always,
    inject: (context) => onTarget(context, (target) => target.fail(95, 503)),
  },
  {
    name: 'zone-dark',
    description: 'every instance in the zone serving the load stops',
    unavailable: always,
    inject: (context) => {
      const { zone } = targetOf(context).view;
      return darken(context, [zone], `zone ${zone}`);
    },
  },
  {
    name: 'city-dark',
    description: 'every instance in the city serving the load stops',
    unavailable: always,
    inject: (context) => {
      const { zone, city } = targetOf(context).view;
      if (city === null) return darken(context, [zone], `zone ${zone} (in no city of the topology)`);
      const zones = [...new Set(context.placement.filter((instance) => instance.city === city).map((instance) => instance.zone))];
      return darken(context, zones, `city ${city}`);
    },
  },
  relayCut('consul-unavailable', 'Consul', (fleet) => fleet.consulRelay, 'needs --consul (the simulated instances are then discovered from that Consul)'),
  relayCut('redis-unavailable', 'Redis', (fleet) => fleet.redisRelay, 'needs redis.url in the config (a Redis on this host)'),
  {
    name: 'slow-uploads',
    description: `${SLOW_UPLOADS} clients upload a body a byte a second beside the load`,
    unavailable: always,
    inject: async (context) => {
      const uploads = new SlowUploads(context.gateway.port, context.path, SLOW_UPLOADS, SLOW_UPLOAD_INTERVAL_MS);
      return { what: `${SLOW_UPLOADS} slow uploads`, failed: [], repair: async () => uploads.stop() };
    },
  },
  {
    name: 'route-abort',
    description: "the load's route aborts all of the drill's requests with 503 (a fault set through the admin API)",
    unavailable: always,
    inject: async (context) => {
      const route = context.route;
      if (route === undefined) throw new Error('no route served the load before the fault');
      const { admin } = context.gateway;
      await setFault(admin, route, { abort: { percent: 100, status: 503 }, header: `${DRILL_HEADER}=${context.drillId}` });
      return { what: `route ${route}`, failed: [], repair: () => clearFault(admin, route) };
    },
  },
];
