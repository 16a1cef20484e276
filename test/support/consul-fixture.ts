// An in-process stand-in for a Consul agent, served over real HTTP on 127.0.0.1 so that the real
// `consul` client (and the gateway's watcher built on it) can be tested against Consul's documented
// behaviour: blocking queries, X-Consul-Index rules, agent registration and check updates — plus faults
// (500s, hangs, refused connections, an index that goes backwards, is 0 or is missing) that a live cluster rarely shows on cue.
import { EventEmitter } from 'node:events';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Catalog, type HttpCheckTarget } from './consul-fixture/catalog.ts';
import { weightsError, type CheckInput, type CheckStatus } from './consul-fixture/types.ts';
import { parseGoDuration } from './consul-fixture/duration.ts';
import { ConsulHttpApi, sendText, type AnswerRewrite, type IndexHeaderMode } from './consul-fixture/http-api.ts';

export type { CheckStatus, HealthCheckJson, HealthServiceEntryJson } from './consul-fixture/types.ts';
export type { AnswerRewrite, IndexHeaderMode } from './consul-fixture/http-api.ts';

export interface ConsulFixtureOptions {
  /** the first one is the agent's own datacenter; default `['dc1']` */
  readonly datacenters?: readonly string[];
  /** the agent's node name, also the default node for `register`; default `consul-fixture` */
  readonly nodeName?: string;
}

export interface RecordedRequest {
  /** 1-based arrival order */
  readonly seq: number;
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  /** performance.now() at arrival, for rate assertions */
  readonly receivedAt: number;
}

export interface FixtureCheckInput extends Omit<CheckInput, 'status' | 'definition'> {
  /** default `passing` */
  readonly status?: CheckStatus;
  readonly http?: string;
  readonly ttl?: string;
  readonly interval?: string;
}

export interface ServiceInstanceInput {
  readonly service: string;
  /** default `<service>-<host>-<port>` (Consul's own default, the service name, would make instances replace each other) */
  readonly id?: string;
  readonly port: number;
  /** Service.Address; default '' (Consul's "use the node address") */
  readonly address?: string;
  readonly tags?: readonly string[];
  readonly meta?: Readonly<Record<string, string>>;
  /** stored as Service.Meta.zone */
  readonly zone?: string;
  /** default {passing: 1, warning: 1}, as an agent stores a service registered without weights; validated like Consul */
  readonly weights?: { readonly passing: number; readonly warning: number };
  /** default: the agent's node name */
  readonly node?: string;
  /** Node.Address; default 127.0.0.1 */
  readonly nodeAddress?: string;
  readonly nodeMeta?: Readonly<Record<string, string>>;
  /** Node.TaggedAddresses.wan / wan_ipv4; default the node address */
  readonly nodeWanAddress?: string;
  /** Service.TaggedAddresses, e.g. `{ wan: { Address, Port } }` */
  readonly taggedAddresses?: Readonly<Record<string, { readonly Address: string; readonly Port: number }>>;
  /** status of the single default service check; ignored when `checks` is given. Default `passing` */
  readonly status?: CheckStatus;
  /** explicit service checks; `[]` leaves only the node's serfHealth */
  readonly checks?: readonly FixtureCheckInput[];
}

export interface RegisteredInstance {
  readonly id: string;
  readonly node: string;
  readonly checkIds: readonly string[];
}

export interface ConsulFaults {
  /** while on, every request is answered `500 No cluster leader` */
  status500(on: boolean): void;
  /** while on, requests are accepted and never answered (until refuse() or close()) */
  hang(on: boolean): void;
  /** stops listening and drops every open connection; the port stays reserved for accept() */
  refuse(): Promise<void>;
  /** listens again on the same port */
  accept(): Promise<void>;
  /** the index of `datacenter` (default: all) and of every service in it drops to `to`; parked queries return */
  resetIndex(to: number, datacenter?: string): void;
  /** what health answers say in X-Consul-Index (see IndexHeaderMode); `actual` is Consul without faults */
  indexHeader(mode: IndexHeaderMode): void;
  /**
   * Holds every request for `datacenter` unanswered (as a server that is slow to answer for it) until the
   * returned function is called; then they are answered as if they had just arrived.
   */
  holdDatacenter(datacenter: string): () => void;
  /** rewrites health answers from now on (undefined: Consul's own again); a string return is the raw body */
  rewriteAnswers(rewrite: AnswerRewrite | undefined): void;
  /** the next `count` health answers are cut in the middle of their body by a connection reset (or a plain close) */
  resetMidBody(count: number, how?: 'reset' | 'close'): void;
}

export interface WaitOptions {
  /** default 2000 */
  readonly timeoutMs?: number;
}

export interface ConsulFixture {
  readonly address: string;
  readonly host: string;
  readonly port: number;
  readonly agentDatacenter: string;
  readonly agentNode: string;
  readonly faults: ConsulFaults;
  /** every request received, in order */
  readonly requests: readonly RecordedRequest[];
  register(datacenter: string, input: ServiceInstanceInput): RegisteredInstance;
  /** removes the instance with this ID (on `node` only, when given); false when there was none */
  deregister(datacenter: string, serviceId: string, node?: string): boolean;
  /** sets every check with this ID in the datacenter (or on `node`); throws when there is none */
  setCheck(datacenter: string, checkId: string, status: CheckStatus, options?: { node?: string; output?: string }): void;
  /** the X-Consul-Index a health query for `service` would return now */
  indexOf(service: string, datacenter?: string): number;
  /** blocking queries currently parked */
  pendingBlocking(): number;
  /** resolves once at least `count` blocking queries are parked */
  waitForBlocking(count: number, options?: WaitOptions): Promise<void>;
  /** resolves with the first logged request (past or future) that matches */
  waitForRequest(matches: (request: RecordedRequest) => boolean, options?: WaitOptions): Promise<RecordedRequest>;
  /** runs every HTTP check once: 2xx → passing, 429 → warning, anything else → critical */
  runHttpChecks(): Promise<void>;
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const DEFAULT_WAIT_TIMEOUT_MS = 2_000;
const DEFAULT_HTTP_CHECK_TIMEOUT_MS = 10_000;
/** Consul's default OutputMaxSize for check output */
const CHECK_OUTPUT_MAX = 4_096;

export async function startConsulFixture(options: ConsulFixtureOptions = {}): Promise<ConsulFixture> {
  const fixture = new ConsulFixtureServer(options);
  await fixture.listen(0);
  return fixture;
}

class ConsulFixtureServer implements ConsulFixture {
  readonly host = HOST;
  readonly agentDatacenter: string;
  readonly agentNode: string;
  readonly faults: ConsulFaults;
  readonly #requests: RecordedRequest[] = [];
  readonly #activity = new EventEmitter();
  readonly #server: Server;
  readonly #catalog: Catalog;
  readonly #api: ConsulHttpApi;
  #port = 0;
  #failing = false;
  #hanging = false;
  /** held requests per datacenter, answered when released */
  readonly #held = new Map<string, (() => void)[]>();

  constructor(options: ConsulFixtureOptions) {
    const datacenters = options.datacenters ?? ['dc1'];
    const [agentDatacenter] = datacenters;
    if (agentDatacenter === undefined) throw new Error('a Consul fixture needs at least one datacenter');
    this.agentDatacenter = agentDatacenter;
    this.agentNode = options.nodeName ?? 'consul-fixture';
    this.#catalog = new Catalog(datacenters, {
      committed: (datacenter) => this.#api.wake(datacenter),
      restored: (datacenter) => this.#api.release(datacenter),
    });
    this.#api = new ConsulHttpApi(this.#catalog, { datacenter: agentDatacenter, node: this.agentNode }, () => this.#notify());
    this.#server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', `http://${HOST}`);
      this.#requests.push({
        seq: this.#requests.length + 1,
        method: req.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        receivedAt: performance.now(),
      });
      this.#notify();
      if (this.#hanging) return;
      if (this.#failing) return sendText(res, 500, 'No cluster leader');
      const held = this.#held.get(url.searchParams.get('dc') || this.agentDatacenter);
      if (held) return void held.push(() => this.#api.handle(req, res, url));
      this.#api.handle(req, res, url);
    });
    this.faults = {
      status500: (on) => void (this.#failing = on),
      hang: (on) => void (this.#hanging = on),
      refuse: () => this.#stopListening(),
      accept: () => (this.#server.listening ? Promise.resolve() : this.listen(this.#port)),
      resetIndex: (to, datacenter) => {
        for (const name of datacenter === undefined ? this.#catalog.datacenterNames() : [datacenter]) this.#catalog.resetIndex(name, to);
      },
      indexHeader: (mode) => void (this.#api.indexHeader = mode),
      holdDatacenter: (datacenter) => {
        const held: (() => void)[] = [];
        this.#held.set(datacenter, held);
        return () => {
          if (this.#held.get(datacenter) === held) this.#held.delete(datacenter);
          for (const answer of held.splice(0)) answer();
        };
      },
      rewriteAnswers: (rewrite) => void (this.#api.rewriteAnswer = rewrite),
      resetMidBody: (count, how = 'reset') => {
        this.#api.resetsMidBody = count;
        this.#api.cutWith = how;
      },
    };
  }

  get port(): number {
    return this.#port;
  }

  get address(): string {
    return `http://${HOST}:${this.#port}`;
  }

  get requests(): readonly RecordedRequest[] {
    return this.#requests;
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, HOST, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  register(datacenter: string, input: ServiceInstanceInput): RegisteredInstance {
    const node = input.node ?? this.agentNode;
    const host = input.address || input.nodeAddress || HOST;
    const id = input.id ?? `${input.service}-${host}-${input.port}`;
    const checks = input.checks ?? [{ status: input.status }];
    const weights = input.weights ? { Passing: input.weights.passing, Warning: input.weights.warning } : { Passing: 1, Warning: 1 };
    const invalid = weightsError(weights);
    if (invalid) throw new Error(`Invalid Weights: ${invalid}`);
    const checkIds = this.#catalog.register(datacenter, {
      node: { name: node, address: input.nodeAddress, wanAddress: input.nodeWanAddress, meta: input.nodeMeta },
      id,
      name: input.service,
      tags: input.tags ?? [],
      address: input.address ?? '',
      port: input.port,
      meta: input.zone === undefined ? { ...input.meta } : { ...input.meta, zone: input.zone },
      weights,
      taggedAddresses: input.taggedAddresses,
      checks: checks.map(({ status, http, ttl, interval, ...rest }) => ({
        ...rest,
        status: status ?? 'passing',
        definition: { http, ttl, interval },
      })),
    });
    return { id, node, checkIds };
  }

  deregister(datacenter: string, serviceId: string, node?: string): boolean {
    return this.#catalog.deregister(datacenter, serviceId, node);
  }

  setCheck(datacenter: string, checkId: string, status: CheckStatus, options: { node?: string; output?: string } = {}): void {
    if (this.#catalog.setCheck(datacenter, checkId, status, options) === 0) {
      throw new Error(`no check ${JSON.stringify(checkId)} in ${datacenter}${options.node ? ` on node ${options.node}` : ''}`);
    }
  }

  indexOf(service: string, datacenter = this.agentDatacenter): number {
    return this.#catalog.indexOf(datacenter, service);
  }

  pendingBlocking(): number {
    return this.#api.parkedCount;
  }

  waitForBlocking(count: number, options: WaitOptions = {}): Promise<void> {
    const reached = (): true | undefined => (this.pendingBlocking() >= count ? true : undefined);
    return this.#waitFor(reached, `${count} parked blocking queries (have ${this.pendingBlocking()})`, options).then(() => undefined);
  }

  waitForRequest(matches: (request: RecordedRequest) => boolean, options: WaitOptions = {}): Promise<RecordedRequest> {
    return this.#waitFor(() => this.#requests.find(matches), 'a matching request', options);
  }

  async runHttpChecks(): Promise<void> {
    for (const target of this.#catalog.httpChecks()) {
      const { status, output } = await probeHttpCheck(target);
      this.#catalog.setCheck(target.datacenter, target.checkId, status, { node: target.node, output });
    }
  }

  close(): Promise<void> {
    return this.#stopListening();
  }

  async #stopListening(): Promise<void> {
    if (!this.#server.listening) return;
    this.#api.dropParked();
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeAllConnections();
    await closed;
  }

  #notify(): void {
    this.#activity.emit('activity');
  }

  /** Polls `probe` on every request and parked-query change; fails loudly instead of hanging a test. */
  #waitFor<T>(probe: () => T | undefined, what: string, { timeoutMs = DEFAULT_WAIT_TIMEOUT_MS }: WaitOptions): Promise<T> {
    const ready = probe();
    if (ready !== undefined) return Promise.resolve(ready);
    return new Promise<T>((resolve, reject) => {
      const check = (): void => {
        const value = probe();
        if (value === undefined) return;
        stop();
        resolve(value);
      };
      const timer = setTimeout(() => {
        stop();
        reject(new Error(`Consul fixture: timed out after ${timeoutMs}ms waiting for ${what}`));
      }, timeoutMs);
      const stop = (): void => {
        clearTimeout(timer);
        this.#activity.off('activity', check);
      };
      this.#activity.on('activity', check);
    });
  }
}

/** One run of an HTTP check, with Consul's status mapping and output format. */
function probeHttpCheck(target: HttpCheckTarget): Promise<{ status: CheckStatus; output: string }> {
  const timeoutMs = (target.timeout && parseGoDuration(target.timeout)) || DEFAULT_HTTP_CHECK_TIMEOUT_MS;
  const send = target.url.startsWith('https:') ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    const req = send(target.url, { method: target.method, agent: false, signal: AbortSignal.timeout(timeoutMs) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (error) => resolve({ status: 'critical', output: `${target.method} ${target.url}: ${error.message}` }));
      res.on('end', () => {
        const code = res.statusCode ?? 0;
        const status: CheckStatus = code >= 200 && code < 300 ? 'passing' : code === 429 ? 'warning' : 'critical';
        const body = Buffer.concat(chunks).toString('utf8').slice(0, CHECK_OUTPUT_MAX);
        resolve({ status, output: `HTTP ${target.method} ${target.url}: ${code} ${res.statusMessage ?? ''} Output: ${body}` });
      });
    });
    req.on('error', (error) => resolve({ status: 'critical', output: `${target.method} ${target.url}: ${error.message}` }));
    req.end();
  });
}
