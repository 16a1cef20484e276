// The `consul` client, and the one query discovery makes with it: a blocking /v1/health/service/<name> read.
// The only file that imports the client; what the query returns is not trusted here (consul-entries.ts checks it).
import type { EventEmitter } from 'node:events';
import type { ClientRequest, IncomingMessage, RequestOptions } from 'node:http';
import Consul from 'consul';
import { consulUrl } from '../config/endpoints.ts';
import type { ConsulConfig } from '../config/schema.ts';

/** Resolves `address`/`token` with Consul's own environment variables as fallbacks. */
export function consulEndpoint(config: Pick<ConsulConfig, 'address' | 'token'>, env: NodeJS.ProcessEnv = process.env): { url: URL; token: string } {
  const address = config.address || env.CONSUL_HTTP_ADDR || 'http://127.0.0.1:8500';
  return { url: consulUrl(address), token: config.token || env.CONSUL_HTTP_TOKEN || '' };
}

/** The part of the client's request pipeline (papi) an `onRequest` extension sees. */
interface PendingRequest {
  transport?: { request(options: RequestOptions): ClientRequest };
}
type Extensible = { _ext(event: 'onRequest', step: (request: PendingRequest, next: () => void) => void): void };

/**
 * The client waits for a response's `end` only: a connection reset in the middle of a body would leave the
 * query waiting for its whole timeout (minutes, for a blocking query). A response that closes before it is
 * complete fails its request at once instead, through the request's own error path.
 */
function failCutResponses(client: Consul): void {
  (client as unknown as Extensible)._ext('onRequest', (request, next) => {
    const transport = request.transport;
    if (transport) {
      request.transport = {
        request(options) {
          const req = transport.request(options);
          req.once('response', (res: IncomingMessage) => {
            res.once('close', () => {
              if (!res.complete) req.emit('error', new Error('connection closed in the middle of the answer'));
            });
          });
          return req;
        },
      };
    }
    next();
  });
}

export type ConsulClient = Consul;

/** A client for a `discovery.consul`-style endpoint (also what the demo registers its instances with). */
export function consulClient(config: Pick<ConsulConfig, 'address' | 'token' | 'stale'>): Consul {
  const { url, token } = consulEndpoint(config);
  const client = new Consul({
    host: url.hostname,
    port: Number(url.port || (url.protocol === 'https:' ? 443 : 80)),
    secure: url.protocol === 'https:',
    defaults: { ...(token ? { token } : {}), ...(config.stale ? { stale: true } : {}) },
  });
  failCutResponses(client);
  return client;
}

/**
 * health.service as the client really behaves (lib/utils.js `options`): its typings omit index, wait, timeout
 * and ctx, and with `ctx.includeResponse` it resolves to [response, body], which is how X-Consul-Index is read.
 */
type BlockingHealthService = (query: {
  service: string;
  dc: string;
  index?: string;
  wait?: string;
  timeout: number;
  ctx: EventEmitter & { includeResponse: true };
}) => Promise<[IncomingMessage, unknown]>;

export interface HealthQuery {
  readonly service: string;
  readonly datacenter: string;
  /** 0: a plain read; above: block until the index moves past it or `waitMs` passes */
  readonly index: number;
  readonly waitMs: number;
  /** emitting `cancel` on it aborts the query */
  readonly cancel: EventEmitter;
}

export interface HealthAnswer {
  /** the decoded body, unchecked */
  readonly body: unknown;
  /** X-Consul-Index as a number: NaN when the header is missing or not a number */
  readonly index: number;
}

export async function queryHealth(client: Consul, query: HealthQuery): Promise<HealthAnswer> {
  const ctx = Object.assign(query.cancel, { includeResponse: true as const });
  const health = client.health;
  const [res, body] = await (health.service as unknown as BlockingHealthService).call(health, {
    service: query.service,
    dc: query.datacenter,
    ...(query.index > 0 ? { index: String(query.index), wait: `${query.waitMs}ms` } : {}),
    // Consul may hold a query up to wait + wait/16; past that the connection is dead.
    timeout: query.index > 0 ? query.waitMs + query.waitMs / 16 + 5000 : 10_000,
    ctx,
  });
  return { body, index: Number(res.headers['x-consul-index']) };
}
