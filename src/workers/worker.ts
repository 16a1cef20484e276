// A worker of `zonegate run --workers`: one gateway with its own proxy listener on the shared address, fed by the
// primary with the config (validated there), Consul's instances and rate-limit decisions; it answers the
// primary's questions for the admin listener. SIGTERM/SIGINT drain it like a single gateway.
import { Gateway, type WorkerRole } from '../gateway.ts';
import type { InstanceSpec } from '../discovery/instance.ts';
import type { Registry } from '../discovery/registry.ts';
import { startChunkReclaim } from '../memory.ts';
import { createLogger, flushLogger } from '../observability/logger.ts';
import { explain } from '../routing/explain.ts';
import { upstreamsView } from '../admin/views.ts';
import { exitOnFatalError, stopOnSignal } from '../lifecycle.ts';
import { isToWorker, type AskMessage, type Question, type StartMessage, type ToPrimary, type ToWorker } from './messages.ts';
import { TokenClient } from './tokens.ts';

function send(message: ToPrimary): void {
  if (process.connected) process.send!(message);
}

/** Instances from the primary: held until the gateway's registry exists, then applied as they come. */
class DiscoveryFeed {
  #registry: Registry | undefined;
  readonly #held = new Map<string, readonly InstanceSpec[]>();

  constructor(snapshots: StartMessage['snapshots']) {
    for (const [service, specs] of snapshots) this.#held.set(service, specs);
  }

  receive(service: string, specs: readonly InstanceSpec[]): void {
    if (this.#registry === undefined) this.#held.set(service, specs);
    else this.#registry.replace(service, specs);
  }

  attach(registry: Registry): void {
    this.#registry = registry;
    for (const [service, specs] of this.#held) registry.replace(service, specs);
    this.#held.clear();
  }
}

function firstMessage(): Promise<StartMessage> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if (!isToWorker(message) || message.kind !== 'zonegate:start') return;
      process.off('message', onMessage);
      resolve(message);
    };
    process.on('message', onMessage);
  });
}

async function answer(gateway: Gateway, question: Question): Promise<unknown> {
  switch (question.what) {
    case 'metrics':
      return gateway.metrics.json();
    case 'ready':
      return { ready: gateway.isReady(), pid: process.pid };
    case 'upstreams':
      return upstreamsView({ registry: gateway.registry, breakerState: (i) => gateway.breakers.state(i), inFlight: (i) => gateway.upstreams.inFlight.load(i) });
    case 'explain':
      return gateway.explain(question.query);
  }
}

function reply(gateway: Gateway, message: AskMessage): void {
  answer(gateway, message.question).then(
    (body) => send({ kind: 'zonegate:answer', id: message.id, body }),
    (err: unknown) => send({ kind: 'zonegate:answer', id: message.id, error: String(err) }),
  );
}

export async function runWorker(): Promise<number> {
  // SIGHUP would end the process; the primary reloads every worker, so a worker passes it on
  process.on('SIGHUP', () => send({ kind: 'zonegate:hangup' }));
  const stop = stopOnSignal();
  const start = await firstMessage();
  const logger = createLogger({ base: { worker: start.index, pid: process.pid } });
  const feed = new DiscoveryFeed(start.snapshots);
  const buckets = new TokenClient(send, start.workers);
  let gateway: Gateway | undefined;
  const onMessage = (message: unknown): void => {
    if (!isToWorker(message)) return;
    handle(message);
  };
  const handle = (message: ToWorker): void => {
    switch (message.kind) {
      case 'zonegate:snapshot':
        return feed.receive(message.service, message.specs);
      case 'zonegate:taken':
        return buckets.answered(message);
      case 'zonegate:config':
        if (gateway === undefined) return send({ kind: 'zonegate:answer', id: message.id, body: false });
        void gateway.reload(message.config).then((applied) => send({ kind: 'zonegate:answer', id: message.id, body: applied }));
        return;
      case 'zonegate:ask':
        if (gateway === undefined) return send({ kind: 'zonegate:answer', id: message.id, error: 'the worker is starting' });
        return reply(gateway, message);
      case 'zonegate:start':
        return;
    }
  };
  process.on('message', onMessage);
  const role: WorkerRole = { workers: start.workers, feed: (registry) => feed.attach(registry), buckets };
  try {
    gateway = await Gateway.start(start.config, { logger, worker: role });
  } catch (err) {
    // a listener that cannot bind: the primary hears of it by the exit (the IPC channel would keep this process up)
    logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'worker could not start');
    await flushLogger(logger);
    process.exit(1);
  }
  const running = gateway;
  const fatal = exitOnFatalError(logger, () => void running.stop().catch(() => {}));
  process.on('uncaughtException', fatal);
  const reclaim = startChunkReclaim({
    onError: (err) => logger.warn({ err: String(err) }, 'streamed-body memory reclaim is off; memory may peak higher during large transfers'),
  });
  send({ kind: 'zonegate:listening', port: gateway.address.port });
  // (a worker whose primary is gone is ended by Node's cluster module at once: it has no one to answer to)
  await stop;
  await gateway.stop();
  reclaim.stop();
  process.off('message', onMessage);
  process.off('uncaughtException', fatal);
  // the IPC channel would keep the process alive; gateway.stop() has written out the log
  process.disconnect();
  return 0;
}
