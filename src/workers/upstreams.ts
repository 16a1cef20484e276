// GET /admin/upstreams under `zonegate run --workers`: one view of every worker's. Discovery is the same in all
// (one watch, in the primary); breakers and in-flight counts are each worker's own, so an instance shows the
// sum of its requests in flight, the most open breaker, and, where the workers do not agree, each one's state.
import type { InstanceView, ServiceView } from '../admin/views.ts';
import type { BreakerState } from '../resilience/breakers.ts';

export interface WorkerUpstreams {
  readonly worker: number;
  readonly pid: number;
  readonly services: readonly ServiceView[];
}

export interface WorkerInstanceState {
  readonly worker: number;
  readonly pid: number;
  readonly breaker: BreakerState;
  readonly ejected: boolean;
  readonly inFlight: number;
}

export interface MergedInstanceView extends InstanceView {
  /** present only when the workers' breakers disagree about this instance */
  readonly byWorker?: readonly WorkerInstanceState[];
}

export interface MergedServiceView extends Omit<ServiceView, 'instances'> {
  readonly instances: readonly MergedInstanceView[];
}

const OPENNESS: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

function mergeInstance(states: readonly (InstanceView & { worker: number; pid: number })[]): MergedInstanceView {
  const { worker: _worker, pid: _pid, ...first } = states[0]!;
  const breaker = states.reduce<BreakerState>((worst, s) => (OPENNESS[s.breaker] > OPENNESS[worst] ? s.breaker : worst), 'closed');
  const agree = states.every((s) => s.breaker === first.breaker && s.ejected === first.ejected);
  const merged: MergedInstanceView = {
    ...first,
    healthy: states.every((s) => s.healthy),
    ejected: states.some((s) => s.ejected),
    breaker,
    inFlight: states.reduce((sum, s) => sum + s.inFlight, 0),
  };
  if (agree) return merged;
  return { ...merged, byWorker: states.map(({ worker, pid, breaker: state, ejected, inFlight }) => ({ worker, pid, breaker: state, ejected, inFlight })) };
}

export function mergeUpstreams(views: readonly WorkerUpstreams[]): MergedServiceView[] {
  const byService = new Map<string, { views: ServiceView[]; instances: Map<string, (InstanceView & { worker: number; pid: number })[]> }>();
  for (const { worker, pid, services } of views) {
    for (const service of services) {
      let entry = byService.get(service.service);
      if (entry === undefined) byService.set(service.service, (entry = { views: [], instances: new Map() }));
      entry.views.push(service);
      for (const instance of service.instances) {
        const list = entry.instances.get(instance.id) ?? [];
        list.push({ ...instance, worker, pid });
        entry.instances.set(instance.id, list);
      }
    }
  }
  return [...byService.keys()].sort().map((service) => {
    const entry = byService.get(service)!;
    const instances = [...entry.instances.values()].map(mergeInstance).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return {
      service,
      snapshotVersion: Math.max(...entry.views.map((view) => view.snapshotVersion)),
      snapshotBuiltAt: entry.views.map((view) => view.snapshotBuiltAt).sort().at(-1)!,
      registered: instances.length,
      healthy: instances.filter((instance) => instance.healthy).length,
      instances,
    };
  });
}
