// The drill's own traffic: requests at a steady rate to the gateway on loopback (open loop: a slow answer does not
// slow the schedule), each recorded with its outcome, latency and the tier and instance that served it; and slow
// uploads, clients that trickle a body, for the slow-uploads scenario.
import { connect, type Socket } from 'node:net';
import { Pool } from 'undici';

/** One request of the steady load; times in ms since the load started. */
export interface Sample {
  readonly start: number;
  readonly end: number;
  /** 0: no response (connection failed, or the drill's own timeout) */
  readonly status: number;
  /** the gateway's error code (`error` of its JSON body), or a transport error's code; null when served */
  readonly error: string | null;
  /** X-Zonegate-Tier, X-Zonegate-Upstream, X-Zonegate-Route */
  readonly tier: string | null;
  readonly upstream: string | null;
  readonly route: string | null;
}

export interface LoadOptions {
  /** the gateway, http://127.0.0.1:port */
  readonly origin: string;
  readonly path: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  /** requests per second */
  readonly rate: number;
  /** a response not complete after this is recorded as failed (status 0, `drill_timeout`) */
  readonly timeoutMs: number;
}

/** requests of the load in flight at once; beyond it a request is recorded as failed (`drill_overload`) */
const MAX_IN_FLIGHT = 512;
const TICK_MS = 5;

export class SteadyLoad {
  readonly samples: Sample[] = [];
  readonly startedAt = performance.now();
  readonly #options: LoadOptions;
  readonly #pool: Pool;
  readonly #timer: NodeJS.Timeout;
  readonly #inFlight = new Set<Promise<void>>();
  #sent = 0;

  constructor(options: LoadOptions) {
    if (!/^http:\/\/(127\.0\.0\.1|\[::1\]|localhost)(:\d+)?$/.test(options.origin)) throw new Error(`the drill sends only to loopback, not to ${options.origin}`);
    this.#options = options;
    this.#pool = new Pool(options.origin, { connections: MAX_IN_FLIGHT, headersTimeout: options.timeoutMs, bodyTimeout: options.timeoutMs });
    this.#timer = setInterval(() => this.#tick(), TICK_MS);
  }

  /** ms since the load started */
  now(): number {
    return performance.now() - this.startedAt;
  }

  #tick(): void {
    const due = Math.floor((this.now() * this.#options.rate) / 1000);
    while (this.#sent < due) {
      this.#sent += 1;
      if (this.#inFlight.size >= MAX_IN_FLIGHT) {
        const at = this.now();
        this.samples.push({ start: at, end: at, status: 0, error: 'drill_overload', tier: null, upstream: null, route: null });
        continue;
      }
      const pending = this.#send();
      this.#inFlight.add(pending);
      void pending.finally(() => this.#inFlight.delete(pending));
    }
  }

  async #send(): Promise<void> {
    const start = this.now();
    const { path, method, headers } = this.#options;
    try {
      const res = await this.#pool.request({ path, method, headers, signal: AbortSignal.timeout(this.#options.timeoutMs) });
      let error: string | null = null;
      if (res.statusCode >= 400) error = gatewayError(await res.body.text());
      else await res.body.dump();
      const header = (name: string): string | null => {
        const value = res.headers[name];
        return typeof value === 'string' ? value : null;
      };
      this.samples.push({
        start,
        end: this.now(),
        status: res.statusCode,
        error,
        tier: header('x-zonegate-tier'),
        upstream: header('x-zonegate-upstream'),
        route: header('x-zonegate-route'),
      });
    } catch (err) {
      const code = err instanceof Error && err.name === 'TimeoutError' ? 'drill_timeout' : ((err as { code?: string }).code ?? 'connection_failed');
      this.samples.push({ start, end: this.now(), status: 0, error: code, tier: null, upstream: null, route: null });
    }
  }

  /** Stops sending and waits for the answers still due. */
  async stop(): Promise<Sample[]> {
    clearInterval(this.#timer);
    await Promise.allSettled([...this.#inFlight]);
    await this.#pool.close();
    return this.samples.sort((a, b) => a.start - b.start);
  }
}

/** The `error` of the gateway's JSON error body; for any other body the status says it all. */
function gatewayError(body: string): string | null {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    return typeof parsed.error === 'string' ? parsed.error : null;
  } catch {
    return null;
  }
}

/**
 * Clients that upload a body a byte at a time (one every `intervalMs`), each over its own connection, until
 * stopped: what a slow mobile network or a slowloris attack looks like to the gateway.
 */
export class SlowUploads {
  readonly #sockets: Socket[] = [];
  readonly #timer: NodeJS.Timeout;

  constructor(port: number, path: string, count: number, intervalMs: number) {
    for (let i = 0; i < count; i++) {
      const socket = connect(port, '127.0.0.1');
      socket.on('error', () => {});
      socket.write(`POST ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: text/plain\r\ncontent-length: 100000\r\n\r\n`);
      socket.resume();
      this.#sockets.push(socket);
    }
    this.#timer = setInterval(() => {
      for (const socket of this.#sockets) if (socket.writable) socket.write('x');
    }, intervalMs);
  }

  stop(): void {
    clearInterval(this.#timer);
    for (const socket of this.#sockets) socket.destroy();
  }
}
