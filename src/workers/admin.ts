// The primary's admin listener: one gateway seen from outside. /metrics merges every worker's metrics
// (prom-client's AggregatorRegistry: counters and histograms summed, process gauges by their own aggregator;
// gauges that describe each worker's view of the instances get a `worker` label instead of a meaningless sum),
// /admin/upstreams merges their views, /readyz is ready only when every worker is.
import { AggregatorRegistry, Counter, Gauge, Registry } from 'prom-client';
import type { AdminHooks } from '../admin/server.ts';
import type { ServiceView } from '../admin/views.ts';
import { routesView } from '../admin/views.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { RouteTable } from '../routing/route-table.ts';
import type { MissingService } from '../discovery/consul.ts';
import { CarriedCounters, type MetricsJson, type SlotMetrics } from './metrics-carry.ts';
import type { Slot, Supervisor } from './supervisor.ts';
import { mergeUpstreams } from './upstreams.ts';

/** Gauges of a worker's own breakers and ejections: each worker's value, labelled, rather than a sum. */
const PER_WORKER_GAUGES: ReadonlySet<string> = new Set(['zonegate_upstream_instances', 'zonegate_breakers']);

function labelWorker(metrics: MetricsJson, worker: number): MetricsJson {
  return metrics.map((metric) =>
    PER_WORKER_GAUGES.has(metric.name) ? { ...metric, values: metric.values.map((value) => ({ ...value, labels: { ...value.labels, worker } })) } : metric,
  );
}

export interface PrimaryAdminSources {
  readonly supervisor: Supervisor;
  readonly logger: Logger;
  config(): Config;
  missing(): MissingService[];
}

/** The primary's own metrics: how many workers serve and how often they were replaced. */
function supervisorMetrics(supervisor: Supervisor): Registry {
  const registry = new Registry();
  new Gauge({
    name: 'zonegate_workers',
    help: 'Worker processes listening on the proxy address',
    registers: [registry],
    collect() {
      this.set(supervisor.live().length);
    },
  });
  new Counter({
    name: 'zonegate_worker_restarts_total',
    help: 'Workers started in place of one that exited',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(supervisor.slots.reduce((sum, slot) => sum + slot.restarts, 0));
    },
  });
  return registry;
}

export function primaryAdminHooks(sources: PrimaryAdminSources): AdminHooks {
  const { supervisor, logger } = sources;
  const own = supervisorMetrics(supervisor);
  const carried = new CarriedCounters();
  const askAll = async <T>(what: 'metrics' | 'upstreams' | 'ready', map: (slot: Slot & { pid: number }, body: unknown) => T): Promise<T[]> => {
    const slots = supervisor.live();
    const answers = await Promise.allSettled(
      slots.map(async (slot) => {
        const pid = slot.worker!.process.pid!;
        return map({ ...slot, pid }, await supervisor.ask(slot, { what }));
      }),
    );
    return answers.flatMap((answer) => (answer.status === 'fulfilled' ? [answer.value] : []));
  };
  return {
    async isReady() {
      const slots = supervisor.live();
      if (slots.length < supervisor.slots.length) return false;
      const ready = await askAll('ready', (_slot, body) => (body as { ready: boolean }).ready);
      return ready.length === slots.length && ready.every(Boolean);
    },
    readinessDetail() {
      const missing = sources.missing();
      const workers = { listening: supervisor.live().length, of: supervisor.slots.length };
      return missing.length > 0 ? { workers, missing } : { workers };
    },
    token: () => sources.config().gateway.adminToken,
    routes: () => routesView(new RouteTable(sources.config().routes)),
    upstreams: async () =>
      mergeUpstreams(await askAll('upstreams', (slot, body) => ({ worker: slot.index, pid: slot.pid, services: body as ServiceView[] }))),
    explain: (query) => {
      const [slot] = supervisor.live();
      if (slot === undefined) throw new Error('no worker is listening');
      return supervisor.ask(slot, { what: 'explain', query });
    },
    metrics: () => ({
      contentType: own.contentType,
      async exposition() {
        const answers = await askAll('metrics', (slot, body): SlotMetrics => ({ index: slot.index, pid: slot.pid, metrics: labelWorker(body as MetricsJson, slot.index) }));
        const perWorker = await carried.collect(supervisor.slots.map((slot) => slot.index), answers);
        return (await AggregatorRegistry.aggregate(perWorker).metrics()) + (await own.metrics());
      },
    }),
    failed: (err) => logger.error({ err: err instanceof Error ? err.stack : String(err) }, 'admin endpoint failed'),
    tokenRejected: (failure) => logger.warn(failure, 'admin: a request with a wrong or missing token was refused'),
  };
}
