// Which CPUs this process may use (Linux `taskset`), for pinning the benchmark's processes to cores of their own.
import { execFileSync } from 'node:child_process';

/** The CPUs this process may run on, or why they cannot be known (not Linux, no `taskset`). */
export function allowedCpus(): number[] | { reason: string } {
  if (process.platform !== 'linux') return { reason: 'not Linux' };
  try {
    const answer = execFileSync('taskset', ['-c', '-p', String(process.pid)], { encoding: 'utf8' });
    return parseCpuList(answer.slice(answer.lastIndexOf(':') + 1));
  } catch {
    return { reason: 'taskset not available' };
  }
}

/** `0-3,6` → [0, 1, 2, 3, 6] */
function parseCpuList(text: string): number[] {
  return text.trim().split(',').flatMap((part) => {
    const [first, last = first] = part.split('-').map(Number);
    if (first === undefined || last === undefined || Number.isNaN(first) || Number.isNaN(last)) return [];
    return Array.from({ length: last - first + 1 }, (_, offset) => first + offset);
  });
}

/** Moves every thread of process `pid` (libuv's pool included) onto `cpus`. */
export function pinProcess(pid: number, cpus: readonly number[]): void {
  execFileSync('taskset', ['-a', '-c', '-p', cpus.join(','), String(pid)], { stdio: 'ignore' });
}
