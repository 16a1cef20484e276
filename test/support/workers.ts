// Clients of a `zonegate run --workers` process: keep-alive connections known to land on each worker (the kernel
// picks a worker per connection, so a test that needs a given worker keeps the connection that reached it).
import { Agent, request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { pollUntil } from './http.ts';

export interface WorkerReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** the worker's pid (X-Zonegate-Worker: routing headers must be on) */
  readonly pid: number;
}

/** One request; `agent` undefined: a connection of its own, closed after. */
export function ask(url: string, path: string, agent?: Agent, headers: OutgoingHttpHeaders = {}): Promise<WorkerReply> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { agent: agent ?? false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, pid: Number(res.headers['x-zonegate-worker']) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** A kept-alive connection to each of `count` workers, by pid (found by opening connections until each answered). */
export async function connectionPerWorker(url: string, count: number, path = '/probe'): Promise<Map<number, Agent>> {
  const agents = new Map<number, Agent>();
  await pollUntil(
    async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const { pid } = await ask(url, path, agent);
      if (agents.has(pid)) agent.destroy();
      else agents.set(pid, agent);
      return agents.size >= count ? true : undefined;
    },
    20_000,
    `a connection to each of ${count} workers`,
  );
  return agents;
}

/** The value of `name{labels}` in Prometheus text, or undefined. */
export function metricValue(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
