// Simulated service instances for `zonegate demo`: one real HTTP server per static instance of the config,
// each answering JSON with its service, instance id and zone, and echoing the request id. Each can be told to
// misbehave (`zonegate drill`): go down, hang, or answer 503 for a share of requests.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Config } from '../config/schema.ts';
import { staticSpecs } from '../discovery/static.ts';
import type { InstanceSpec } from '../discovery/instance.ts';
import { EvenShare } from '../proxy/fault.ts';

/** What a drill does to one simulated instance. */
export interface InstanceControl {
  readonly instance: InstanceSpec;
  /** closes its listener and every connection: connects are refused until restore() */
  kill(): Promise<void>;
  /** accepts requests and never answers them, until restore() */
  hang(): void;
  /** answers `status` instead of serving for exactly `percent` of every 100 requests */
  fail(percent: number, status?: number): void;
  /** serves normally again (listening again on the same port after kill) */
  restore(): Promise<void>;
  /** when it received each request, in ms since the epoch (sub-millisecond): a drill in another process reads them */
  readonly arrivals: number[];
}

export interface DemoUpstreams {
  readonly instances: readonly InstanceSpec[];
  readonly controls: readonly InstanceControl[];
  close(): Promise<void>;
}

export interface DemoUpstreamOptions {
  /** listen on ports the system picks (loopback), not the config's addresses: `instances` say where */
  readonly freePorts?: boolean;
}

function answer(instance: InstanceSpec, req: IncomingMessage, res: ServerResponse): void {
  const body = JSON.stringify({
    service: instance.service,
    instance: instance.id,
    zone: instance.zone,
    method: req.method,
    path: req.url,
    requestId: req.headers['x-request-id'] ?? null,
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

type Behaviour = { readonly kind: 'serve' } | { readonly kind: 'hang' } | { readonly kind: 'fail'; readonly share: EvenShare; readonly status: number };
const SERVE: Behaviour = { kind: 'serve' };

class SimulatedInstance implements InstanceControl {
  instance: InstanceSpec;
  readonly arrivals: number[] = [];
  readonly server: Server;
  readonly #sockets = new Set<Socket>();
  #behaviour: Behaviour = SERVE;
  #down = false;

  constructor(instance: InstanceSpec) {
    this.instance = instance;
    this.server = createServer((req, res) => {
      if (this.arrivals.length >= MAX_ARRIVALS) this.arrivals.splice(0, MAX_ARRIVALS / 2);
      this.arrivals.push(performance.timeOrigin + performance.now());
      const behaviour = this.#behaviour;
      req.resume();
      if (behaviour.kind === 'hang') return;
      req.on('end', () => {
        if (behaviour.kind === 'fail' && behaviour.share.draw()) return void res.writeHead(behaviour.status, { 'content-length': 0 }).end();
        answer(this.instance, req, res);
      });
    });
    this.server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.once('close', () => this.#sockets.delete(socket));
    });
  }

  async listen(port: number): Promise<void> {
    this.server.listen(port, this.instance.host);
    await once(this.server, 'listening');
  }

  async kill(): Promise<void> {
    if (this.#down) return;
    this.#down = true;
    const closed = new Promise((resolve) => this.server.close(resolve));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  hang(): void {
    this.#behaviour = { kind: 'hang' };
  }

  fail(percent: number, status = 503): void {
    this.#behaviour = { kind: 'fail', share: new EvenShare(percent), status };
  }

  async restore(): Promise<void> {
    // requests held by a hang are cut: the gateway has long given up on them
    if (this.#behaviour.kind === 'hang') for (const socket of this.#sockets) socket.destroy();
    this.#behaviour = SERVE;
    if (!this.#down) return;
    this.#down = false;
    await this.listen(this.instance.port);
  }

  /** Stops for good: the same as a kill, without a restore to follow. */
  close(): Promise<void> {
    return this.kill();
  }
}

/** arrivals kept per instance (the oldest half goes when full): a few MiB at most */
const MAX_ARRIVALS = 200_000;

export async function startDemoUpstreams(config: Config, options: DemoUpstreamOptions = {}): Promise<DemoUpstreams> {
  const specs = Object.entries(config.discovery.static).flatMap(([service, entries]) => staticSpecs(service, entries));
  const started: SimulatedInstance[] = [];
  try {
    for (const spec of specs) {
      const simulated = new SimulatedInstance(options.freePorts ? { ...spec, host: '127.0.0.1' } : spec);
      started.push(simulated);
      await simulated.listen(options.freePorts ? 0 : spec.port);
      if (options.freePorts) {
        const port = (simulated.server.address() as { port: number }).port;
        // the id follows the address, as discovery would name it (unless the file names it)
        const id = spec.id === `${spec.service}@${spec.host}:${spec.port}` ? `${spec.service}@127.0.0.1:${port}` : spec.id;
        simulated.instance = { ...simulated.instance, id, port };
      }
    }
  } catch (err) {
    await Promise.all(started.map((simulated) => simulated.close()));
    throw err;
  }
  return {
    instances: started.map((simulated) => simulated.instance),
    controls: started,
    async close() {
      await Promise.all(started.map((simulated) => simulated.close()));
    },
  };
}
