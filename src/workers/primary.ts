// The primary of `zonegate run --workers N`: serves no traffic. It validates the config (once, for all), holds
// the admin listener, the Consul watch and the in-memory rate-limit buckets, starts N workers that each listen on
// the proxy address (SO_REUSEPORT: the kernel spreads connections, none passes through the primary), restarts
// one that dies, reloads them all on SIGHUP or a file change, and drains them all on SIGTERM/SIGINT.
import type { AddressInfo } from 'node:net';
import { createAdminServer } from '../admin/server.ts';
import { checkAdmin } from '../config/checks.ts';
import { ConfigError } from '../config/errors.ts';
import type { LoadedConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { watchConfig, type ConfigWatcher } from '../config/watch.ts';
import { exitOnFatalError, stopOnSignal } from '../lifecycle.ts';
import { listenOn } from '../listener/listen.ts';
import { createLogger, flushLogger, logDestination } from '../observability/logger.ts';
import { primaryAdminHooks } from './admin.ts';
import { PrimaryDiscovery } from './discovery.ts';
import { Supervisor } from './supervisor.ts';
import { TokenAuthority } from './tokens.ts';
import { forwardWholeLines } from './whole-lines.ts';

/** beyond gateway.drainTimeout, how long the primary waits for workers to write their last lines and exit */
const DRAIN_GRACE_MS = 5_000;
/** how long a reload waits for every worker to say it applied the config */
const RELOAD_ANSWER_TIMEOUT_MS = 10_000;

/** The config a worker runs: the proxy port is the one every worker binds (the first one's, for port 0). */
function withPort(config: Config, port: number): Config {
  return { ...config, gateway: { ...config.gateway, listen: { ...config.gateway.listen, port } } };
}

export async function runPrimary(configPath: string, loaded: LoadedConfig, workers: number): Promise<number> {
  const stop = stopOnSignal();
  let watcher: ConfigWatcher | undefined;
  const hangup = (): void => void watcher?.reload();
  process.on('SIGHUP', hangup);
  const logger = createLogger();
  // the primary writes every line of every worker: one writer of stdout
  const out = logDestination(logger);
  let config = loaded.config;
  /** bumped by each applied reload; a worker that started with an older config gets the current one once it listens */
  let generation = 0;
  const startedWith = new Map<number, number>();
  const tokens = new TokenAuthority();
  // the discovery publishes through the supervisor (only once it watches, after both exist)
  const discovery = new PrimaryDiscovery(config, logger, (message) => supervisor.broadcast(message));
  const supervisor: Supervisor = new Supervisor({
    workers,
    logger,
    startMessage: (index, port) => {
      startedWith.set(index, generation);
      return { kind: 'zonegate:start', index, workers, config: withPort(config, port), snapshots: discovery.snapshots() };
    },
    listening: (slot) => {
      // a reload that came while this worker started did not reach it
      if (startedWith.get(slot.index) !== generation) supervisor.send(slot, { kind: 'zonegate:config', id: 0, config: withPort(config, supervisor.port) });
    },
    onMessage: (slot, message) => {
      if (message.kind === 'zonegate:take') supervisor.send(slot, tokens.take(message));
      else if (message.kind === 'zonegate:hangup') hangup();
    },
    output: (worker) => forwardWholeLines(worker.process.stdout!, out),
  });
  const admin = createAdminServer(
    primaryAdminHooks({ supervisor, logger, config: () => config, missing: () => discovery.missing() }),
    config.gateway.limits,
  );
  const fatal = exitOnFatalError(logger, () => void supervisor.stop(config.gateway.drainTimeout));
  process.on('uncaughtException', fatal);

  const shutDown = async (): Promise<boolean> => {
    watcher?.close();
    const clean = await supervisor.stop(config.gateway.drainTimeout + DRAIN_GRACE_MS);
    discovery.stop();
    admin.close();
    admin.closeAllConnections();
    return clean;
  };

  let adminAddress: AddressInfo;
  let stoppedEarly = false;
  const stopped = stop.then(() => {
    stoppedEarly = true;
    throw new Error('stopped by a signal while starting');
  });
  stopped.catch(() => {});
  try {
    adminAddress = await listenOn(admin, config.gateway.admin);
    await Promise.race([discovery.start(config), stopped]);
    await Promise.race([supervisor.start(config.gateway.listen.port), stopped]);
  } catch (err) {
    if (stoppedEarly) logger.info('zonegate stopping while it starts: draining every worker');
    else logger.fatal({ err: err instanceof Error ? err.message : String(err) }, 'zonegate could not start its workers');
    const clean = await shutDown();
    await flushLogger(logger);
    process.off('SIGHUP', hangup);
    process.off('uncaughtException', fatal);
    return stoppedEarly && clean ? 0 : 1;
  }
  logger.info(
    {
      listen: { address: config.gateway.listen.host, port: supervisor.port },
      admin: adminAddress,
      routes: config.routes.length,
      workers,
      pids: supervisor.live().map((slot) => slot.worker!.process.pid),
    },
    'zonegate started',
  );

  /** One validated config for every worker; a failure anywhere keeps the file's text to be tried again. */
  const reload = async (next: Config): Promise<boolean> => {
    const { listen, admin: adminAt, limits, workers: count } = config.gateway;
    if (JSON.stringify([listen.host, adminAt, limits, count]) !== JSON.stringify([next.gateway.listen.host, next.gateway.admin, next.gateway.limits, next.gateway.workers])
      || (listen.port !== 0 && next.gateway.listen.port !== listen.port)) {
      logger.warn('gateway.listen, gateway.admin, gateway.limits and gateway.workers changes apply after a restart');
    }
    const applied: Config = { ...next, gateway: { ...next.gateway, listen, admin: adminAt, limits, workers: count } };
    const [exposed] = checkAdmin(applied);
    if (exposed !== undefined) {
      logger.error({ err: `${exposed.message} (the admin listener moves only on restart)` }, 'config reload failed; the running config stays in force');
      return false;
    }
    try {
      await discovery.configure(applied);
    } catch (err) {
      logger.error({ err: String(err) }, 'config reload failed; the running config stays in force');
      return false;
    }
    config = applied;
    generation += 1;
    tokens.retain(applied);
    const failed = await supervisor.configure((id) => ({ kind: 'zonegate:config', id, config: withPort(applied, supervisor.port) }), RELOAD_ANSWER_TIMEOUT_MS);
    if (failed.length > 0) {
      logger.error({ workers: failed }, 'config reload did not apply in every worker (their logs say why); it is tried again on the next change or SIGHUP');
      return false;
    }
    logger.info({ routes: applied.routes.length, workers: supervisor.live().length }, 'config reloaded in every worker');
    return true;
  };
  watcher = watchConfig(configPath, {
    initialText: loaded.text,
    onConfig: reload,
    onError: (err) =>
      logger.error(
        { file: configPath, errors: err instanceof ConfigError ? err.format().split('\n') : [String(err)] },
        'config reload rejected; the running config stays in force',
      ),
  });
  void watcher.reload();
  await stop;
  logger.info({ drainTimeoutMs: config.gateway.drainTimeout, workers: supervisor.live().length }, 'zonegate stopping: draining every worker');
  const clean = await shutDown();
  logger.info(clean ? 'zonegate stopped' : 'zonegate stopped; a worker did not drain cleanly');
  await flushLogger(logger);
  process.off('SIGHUP', hangup);
  process.off('uncaughtException', fatal);
  return clean ? 0 : 1;
}
