// How many workers `zonegate run` starts, and whether this platform can run more than one.
import { availableParallelism } from 'node:os';

export type WorkersSetting = number | 'auto';

/**
 * Platforms whose kernel spreads connections over sockets bound with SO_REUSEPORT (Node's `reusePort` listen
 * option, Node 22.12 and 23.1 on): Linux 3.9+, FreeBSD 12+, Solaris 11.4, AIX 7.2.5+. Elsewhere (macOS,
 * Windows) the listen fails, so more than one worker is refused before anything starts.
 */
const REUSE_PORT_PLATFORMS: ReadonlySet<NodeJS.Platform> = new Set(['linux', 'freebsd', 'sunos', 'aix']);

/** `--workers` as typed: a whole number from 1 or `auto`; a message when it is neither. */
export function parseWorkersOption(text: string): WorkersSetting | { error: string } {
  if (text === 'auto') return 'auto';
  if (/^[1-9]\d{0,3}$/.test(text)) return Number(text);
  return { error: `--workers takes a number of processes (1 or more) or auto, not "${text}"` };
}

/** The number of workers a setting means on this machine (`auto`: one per core Node may use). */
export function resolveWorkers(setting: WorkersSetting, cores = availableParallelism()): number {
  return setting === 'auto' ? Math.max(1, cores) : setting;
}

/** Why `workers` cannot run here, or undefined when it can. */
export function workersUnsupported(workers: number, platform: NodeJS.Platform = process.platform): string | undefined {
  if (workers <= 1 || REUSE_PORT_PLATFORMS.has(platform)) return undefined;
  return (
    `workers: ${workers} needs SO_REUSEPORT listeners, which ${platform} does not offer (Linux, FreeBSD, Solaris and AIX do); ` +
    'run with workers: 1, or one zonegate per core behind a load balancer'
  );
}
