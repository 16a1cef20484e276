// The pieces of `--workers` that need no process: the count, the platform check, the merged upstreams view and
// the primary's token authority.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { InstanceView, ServiceView } from '../../src/admin/views.ts';
import { compilePolicy } from '../../src/ratelimit/policy.ts';
import { parseWorkersOption, resolveWorkers, workersUnsupported } from '../../src/workers/count.ts';
import { TokenAuthority, TokenClient, TOKEN_ANSWER_TIMEOUT_MS } from '../../src/workers/tokens.ts';
import { mergeUpstreams } from '../../src/workers/upstreams.ts';
import type { Config } from '../../src/config/schema.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { primaryAdminHooks } from '../../src/workers/admin.ts';
import type { TakeMessage } from '../../src/workers/messages.ts';
import { restartDelay, type Supervisor } from '../../src/workers/supervisor.ts';

describe('the number of workers', () => {
  test('--workers takes a whole number from 1, or auto', () => {
    assert.equal(parseWorkersOption('4'), 4);
    assert.equal(parseWorkersOption('auto'), 'auto');
    for (const bad of ['0', '-1', '1.5', 'two', '', '01']) assert.match((parseWorkersOption(bad) as { error: string }).error, /--workers takes/);
  });

  test('auto is one per core', () => {
    assert.equal(resolveWorkers('auto', 8), 8);
    assert.equal(resolveWorkers(3, 8), 3);
  });

  test('more than one worker is refused where SO_REUSEPORT does not spread connections', () => {
    assert.equal(workersUnsupported(4, 'linux'), undefined);
    assert.equal(workersUnsupported(1, 'darwin'), undefined);
    assert.match(workersUnsupported(2, 'darwin')!, /workers: 2 needs SO_REUSEPORT.*darwin/);
    assert.match(workersUnsupported(2, 'win32')!, /win32/);
  });
});

function instance(id: string, breaker: InstanceView['breaker'], inFlight = 0): InstanceView {
  const ejected = breaker === 'open';
  return { id, address: `${id}:1`, zone: 'sh-a', city: 'shanghai', region: 'cn-east', datacenter: null, weight: 1, healthy: !ejected, ejected, breaker, inFlight, tags: [] };
}

function service(instances: InstanceView[], version: number): ServiceView {
  return { service: 'app', snapshotVersion: version, snapshotBuiltAt: new Date(version * 1000).toISOString(), registered: instances.length, healthy: instances.filter((i) => i.healthy).length, instances };
}

describe('/admin/upstreams merged over workers', () => {
  test('agreeing workers: one instance, in-flight summed, no per-worker detail', () => {
    const [merged] = mergeUpstreams([
      { worker: 1, pid: 11, services: [service([instance('a', 'closed', 2)], 3)] },
      { worker: 2, pid: 12, services: [service([instance('a', 'closed', 5)], 4)] },
    ]);
    assert.equal(merged!.snapshotVersion, 4);
    assert.equal(merged!.instances.length, 1);
    assert.equal(merged!.instances[0]!.inFlight, 7);
    assert.equal(merged!.instances[0]!.byWorker, undefined);
  });

  test('disagreeing breakers: the most open one, unhealthy, and each worker\'s state', () => {
    const [merged] = mergeUpstreams([
      { worker: 1, pid: 11, services: [service([instance('a', 'open'), instance('b', 'closed')], 3)] },
      { worker: 2, pid: 12, services: [service([instance('a', 'closed'), instance('b', 'closed')], 3)] },
    ]);
    const a = merged!.instances.find((i) => i.id === 'a')!;
    assert.equal(a.breaker, 'open');
    assert.equal(a.healthy, false);
    assert.equal(merged!.healthy, 1);
    assert.deepEqual(a.byWorker, [
      { worker: 1, pid: 11, breaker: 'open', ejected: true, inFlight: 0 },
      { worker: 2, pid: 12, breaker: 'closed', ejected: false, inFlight: 0 },
    ]);
  });
});

describe('the primary\'s token authority', () => {
  const policy = compilePolicy('r', { key: 'route', rate: { perSecond: 1 / 60, windowSeconds: 60 }, burst: 3, cost: 1 } as never);

  test('workers draw from one bucket: the burst is the gateway\'s', async () => {
    const authority = new TokenAuthority();
    const clients = [1, 2].map(() => {
      const client: TokenClient = new TokenClient((message: TakeMessage) => setImmediate(() => client.answered(authority.take(message))), 2);
      return client;
    });
    const decisions = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => clients[i % 2]!.take(policy, 'route')));
    assert.equal(decisions.filter((d) => d.allowed).length, 3);
  });

  test('a primary that does not answer: the worker decides from its share of the limit', { timeout: TOKEN_ANSWER_TIMEOUT_MS * 5 }, async () => {
    const client = new TokenClient(() => {}, 3);
    const decisions = await Promise.all([0, 1].map(() => client.take(policy, 'route')));
    // burst 3 over 3 workers: one token here
    assert.deepEqual(decisions.map((d) => d.allowed), [true, false]);
  });
});

describe('restarts', () => {
  test('back off from 100 ms, doubling per quick failure in a row, up to 10 s', () => {
    assert.deepEqual([1, 2, 3, 4, 7, 8, 20].map(restartDelay), [100, 200, 400, 800, 6400, 10_000, 10_000]);
  });
});

describe('the primary\'s /readyz', () => {
  function hooks(slots: { listening: boolean; ready: boolean }[]) {
    const fake = {
      slots: slots.map((slot, i) => ({ index: i + 1, ...slot, worker: { process: { pid: 100 + i } } })),
      live() {
        return this.slots.filter((slot) => slot.listening);
      },
      ask: async (slot: { ready: boolean }) => ({ ready: slot.ready }),
    };
    return primaryAdminHooks({ supervisor: fake as unknown as Supervisor, logger: createLogger({ level: 'silent' }), config: () => ({}) as Config, missing: () => [] });
  }

  test('ready only when every worker listens and says it is ready', async () => {
    assert.equal(await hooks([{ listening: true, ready: true }, { listening: true, ready: true }]).isReady(), true);
    assert.equal(await hooks([{ listening: true, ready: true }, { listening: false, ready: true }]).isReady(), false);
    assert.equal(await hooks([{ listening: true, ready: true }, { listening: true, ready: false }]).isReady(), false);
    assert.deepEqual(await hooks([{ listening: true, ready: true }, { listening: false, ready: true }]).readinessDetail!(), { workers: { listening: 1, of: 2 } });
  });
});
