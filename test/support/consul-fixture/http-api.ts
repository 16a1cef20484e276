// The HTTP surface of the fixture: the endpoints zonegate's Consul client calls, with Consul's status
// codes, error texts, query-parameter parsing and blocking-query semantics.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Catalog } from './catalog.ts';
import { isCheckStatus, weightsError, type CheckDefinition, type HealthServiceEntryJson, type CheckInput, type CheckStatus, type ServiceWeights } from './types.ts';
import { blockingQueryTimeout, parseGoDuration } from './duration.ts';

export interface AgentIdentity {
  readonly datacenter: string;
  readonly node: string;
}

type Consistency = 'leader' | 'stale' | 'consistent';

/**
 * What health answers say in X-Consul-Index. `zero`: the query computes index 0, the bug Consul's blocking-query
 * docs warn about (older servers, some restores); a query with index >= 1 then blocks for its whole wait, as in
 * Consul, which blocks until the query's own index exceeds the one asked for. `missing`: the header is stripped
 * (as by a proxy) while the server still blocks on its real index.
 */
export type IndexHeaderMode = 'actual' | 'zero' | 'missing';

/** Gets the entries Consul would send and the datacenter; returns what to send instead (a string: the raw body). */
export type AnswerRewrite = (entries: HealthServiceEntryJson[], datacenter: string) => unknown;

interface ParkedQuery {
  readonly datacenter: string;
  readonly service: string;
  readonly minIndex: number;
  readonly passingOnly: boolean;
  readonly consistency: Consistency;
  readonly res: ServerResponse;
  readonly timer: NodeJS.Timeout;
}

/** Thrown by request parsing; becomes the response Consul would give. */
class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const CHECK_UPDATE_STATUS: Readonly<Record<string, CheckStatus>> = { pass: 'passing', warn: 'warning', fail: 'critical' };

export class ConsulHttpApi {
  readonly #catalog: Catalog;
  readonly #agent: AgentIdentity;
  readonly #parked = new Set<ParkedQuery>();
  readonly #parkedChanged: () => void;
  indexHeader: IndexHeaderMode = 'actual';
  /** rewrites health answers (a string is sent as the raw body): what a broken server or a proxy could send */
  rewriteAnswer: AnswerRewrite | undefined;
  /** this many next health answers stop after their headers and half the body, and the connection is reset */
  resetsMidBody = 0;
  /** how the connection of a cut answer ends: a TCP reset, or a plain close (FIN) */
  cutWith: 'reset' | 'close' = 'reset';

  constructor(catalog: Catalog, agent: AgentIdentity, parkedChanged: () => void) {
    this.#catalog = catalog;
    this.#agent = agent;
    this.#parkedChanged = parkedChanged;
  }

  get parkedCount(): number {
    return this.#parked.size;
  }

  handle(req: IncomingMessage, res: ServerResponse, url: URL): void {
    this.#route(req, res, url).catch((error: unknown) => {
      if (error instanceof HttpError) sendText(res, error.status, error.message);
      else sendText(res, 500, error instanceof Error ? error.message : String(error));
    });
  }

  /** Answers the parked queries of `datacenter` whose service moved past the index they wait on. */
  wake(datacenter: string): void {
    for (const query of this.#parked) {
      if (query.datacenter === datacenter && this.#queryIndex(datacenter, query.service) > query.minIndex) this.#finish(query);
    }
  }

  /** Answers every parked query of `datacenter` at once, as Consul does when its state store is restored. */
  release(datacenter: string): void {
    for (const query of this.#parked) if (query.datacenter === datacenter) this.#finish(query);
  }

  /** Forgets parked queries without answering; their connections are about to be destroyed. */
  dropParked(): void {
    for (const query of this.#parked) clearTimeout(query.timer);
    this.#parked.clear();
    this.#parkedChanged();
  }

  async #route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname;
    const method = req.method ?? 'GET';
    const restAfter = (prefix: string): string | undefined =>
      path.startsWith(prefix) ? decodeURIComponent(path.slice(prefix.length)) : undefined;

    const service = restAfter('/v1/health/service/');
    if (service !== undefined) {
      requireMethod(method, 'GET');
      return this.#healthService(res, url, service);
    }
    if (path === '/v1/agent/service/register') {
      requireMethod(method, 'PUT');
      return this.#registerService(res, await readJsonObject(req));
    }
    const deregisterId = restAfter('/v1/agent/service/deregister/');
    if (deregisterId !== undefined) {
      requireMethod(method, 'PUT');
      return this.#deregisterService(res, deregisterId);
    }
    const checkUpdate = /^\/v1\/agent\/check\/(pass|warn|fail)\/(.+)$/.exec(path);
    if (checkUpdate) {
      requireMethod(method, 'PUT');
      const [, verb = '', checkId = ''] = checkUpdate;
      return this.#updateTtlCheck(res, decodeURIComponent(checkId), CHECK_UPDATE_STATUS[verb] ?? 'critical', url);
    }
    sendText(res, 404, '404 page not found\n');
  }

  #healthService(res: ServerResponse, url: URL, service: string): void {
    if (service === '') throw new HttpError(400, 'Missing service name');
    const query = url.searchParams;
    const datacenter = query.get('dc') || this.#agent.datacenter;
    const wait = query.get('wait');
    const waitMs = wait ? parseGoDuration(wait) : undefined;
    if (wait && waitMs === undefined) throw new HttpError(400, 'Invalid wait time');
    const index = query.get('index');
    if (index && !/^\d+$/.test(index)) throw new HttpError(400, 'Invalid index');
    if (query.has('stale') && query.has('consistent')) {
      throw new HttpError(400, 'Cannot specify ?stale with ?consistent, conflicting semantics.');
    }
    const consistency: Consistency = query.has('stale') ? 'stale' : query.has('consistent') ? 'consistent' : 'leader';
    const passingOnly = parseBoolQuery(query, 'passing');
    if (!this.#catalog.hasDatacenter(datacenter)) throw new HttpError(500, 'No path to datacenter');

    const minIndex = index ? Number(index) : 0;
    const request = { datacenter, service, minIndex, passingOnly, consistency, res };
    if (minIndex === 0 || this.#queryIndex(datacenter, service) > minIndex) {
      this.#answer(request);
      return;
    }
    const parked: ParkedQuery = { ...request, timer: setTimeout(() => this.#finish(parked), blockingQueryTimeout(waitMs)) };
    this.#parked.add(parked);
    res.on('close', () => {
      if (this.#parked.delete(parked)) {
        clearTimeout(parked.timer);
        this.#parkedChanged();
      }
    });
    this.#parkedChanged();
  }

  #queryIndex(datacenter: string, service: string): number {
    return this.indexHeader === 'zero' ? 0 : this.#catalog.indexOf(datacenter, service);
  }

  #finish(query: ParkedQuery): void {
    if (!this.#parked.delete(query)) return;
    clearTimeout(query.timer);
    this.#answer(query);
    this.#parkedChanged();
  }

  #answer(query: Omit<ParkedQuery, 'timer'>): void {
    const { datacenter, service, passingOnly, consistency, res } = query;
    if (res.destroyed) return;
    const entries = this.#catalog.healthService(datacenter, service);
    const body = passingOnly ? entries.filter((entry) => entry.Checks.every((check) => check.Status === 'passing')) : entries;
    const rewritten = this.rewriteAnswer ? this.rewriteAnswer(body, datacenter) : body;
    const text = typeof rewritten === 'string' ? rewritten : JSON.stringify(rewritten);
    const cut = this.resetsMidBody > 0;
    if (cut) this.resetsMidBody -= 1;
    res.writeHead(200, {
      'Content-Type': 'application/json',
      ...(this.indexHeader === 'missing' ? {} : { 'X-Consul-Index': String(this.#queryIndex(datacenter, service)) }),
      'X-Consul-KnownLeader': 'true',
      'X-Consul-LastContact': '0',
      'X-Consul-Effective-Consistency': consistency,
      // a cut answer announces the whole body's length, so the client knows it was cut short
      ...(cut ? { 'Content-Length': String(Buffer.byteLength(text)) } : {}),
    });
    if (cut) {
      res.write(text.slice(0, Math.floor(text.length / 2)), () => (this.cutWith === 'reset' ? res.socket?.resetAndDestroy() : res.socket?.destroy()));
      return;
    }
    res.end(text);
  }

  #registerService(res: ServerResponse, body: Record<string, unknown>): void {
    const name = optionalString(body, 'name');
    if (!name) throw new HttpError(400, 'Missing service name');
    const checkBodies = [
      ...(body['check'] === undefined ? [] : [body['check']]),
      ...(Array.isArray(body['checks']) ? (body['checks'] as unknown[]) : []),
    ];
    this.#catalog.register(this.#agent.datacenter, {
      node: { name: this.#agent.node },
      id: optionalString(body, 'id') || name,
      name,
      tags: stringArray(body['tags']),
      address: optionalString(body, 'address') ?? '',
      port: optionalNumber(body, 'port') ?? 0,
      meta: stringRecord(body['meta']),
      weights: serviceWeights(body['weights']),
      checks: checkBodies.map((check) => agentCheck(normalizeKeys(check))),
    });
    res.end();
  }

  #deregisterService(res: ServerResponse, serviceId: string): void {
    const { datacenter, node } = this.#agent;
    if (!this.#catalog.hasService(datacenter, node, serviceId)) {
      throw new HttpError(404, `Unknown service ID ${JSON.stringify(serviceId)}. Ensure that the service ID is passed, not the service name.`);
    }
    this.#catalog.deregister(datacenter, serviceId, node);
    res.end();
  }

  #updateTtlCheck(res: ServerResponse, checkId: string, status: CheckStatus, url: URL): void {
    const { datacenter, node } = this.#agent;
    const kind = this.#catalog.checkKind(datacenter, node, checkId);
    if (kind === undefined) {
      throw new HttpError(404, `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`);
    }
    if (kind !== 'ttl') throw new HttpError(500, `CheckID ${JSON.stringify(checkId)} does not have associated TTL`);
    this.#catalog.setCheck(datacenter, checkId, status, { node, output: url.searchParams.get('note') ?? '' });
    res.end();
  }
}

export function sendText(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8' });
  res.end(text);
}

function requireMethod(actual: string, allowed: string): void {
  if (actual !== allowed) throw new HttpError(405, `method ${actual} not allowed`);
}

/** Go's strconv.ParseBool, plus Consul's rule that a bare `?passing` means true. */
function parseBoolQuery(query: URLSearchParams, key: string): boolean {
  if (!query.has(key)) return false;
  const value = query.get(key) ?? '';
  if (value === '' || ['1', 't', 'T', 'TRUE', 'true', 'True'].includes(value)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(value)) return false;
  throw new HttpError(400, `Invalid value for ?${key}`);
}

/** A check from a service registration body, validated the way Consul's CheckType.Validate does. */
function agentCheck(fields: Record<string, unknown>): CheckInput {
  const status = fields['status'];
  if (status !== undefined && status !== '' && !isCheckStatus(status)) {
    throw new HttpError(400, "Status for checks must 'passing', 'warning', 'critical'");
  }
  const definition: CheckDefinition = {
    http: optionalString(fields, 'http'),
    method: optionalString(fields, 'method'),
    tcp: optionalString(fields, 'tcp'),
    grpc: optionalString(fields, 'grpc'),
    ttl: optionalString(fields, 'ttl'),
    interval: optionalString(fields, 'interval'),
    timeout: optionalString(fields, 'timeout'),
  };
  const runsOnInterval = Boolean(definition.http || definition.tcp || definition.grpc || fields['args'] || fields['script']);
  const positive = (duration: string | undefined): boolean => (duration ? (parseGoDuration(duration) ?? 0) > 0 : false);
  if (positive(definition.interval) && positive(definition.ttl)) throw new HttpError(400, 'Invalid check: Interval and TTL cannot both be specified');
  if (runsOnInterval && !positive(definition.interval)) {
    throw new HttpError(400, 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks');
  }
  if (!runsOnInterval && !positive(definition.ttl)) throw new HttpError(400, 'Invalid check: TTL must be > 0 for TTL checks');
  return {
    id: optionalString(fields, 'checkid') || undefined,
    name: optionalString(fields, 'name') || undefined,
    status: isCheckStatus(status) ? status : 'critical',
    notes: optionalString(fields, 'notes'),
    definition,
  };
}

/**
 * Weights as the agent stores them: none given → {Passing: 1, Warning: 1}; given → taken as decoded, a missing
 * field being Go's zero value, then validated (so `{Passing: 3}` stores Warning 0, and Passing 0 is refused).
 */
function serviceWeights(value: unknown): ServiceWeights {
  if (value === undefined || value === null) return { Passing: 1, Warning: 1 };
  const fields = normalizeKeys(value);
  const weights = { Passing: optionalInteger(fields, 'passing') ?? 0, Warning: optionalInteger(fields, 'warning') ?? 0 };
  const invalid = weightsError(weights);
  if (invalid) throw new HttpError(400, `Invalid Weights: ${invalid}`);
  return weights;
}

async function readJsonObject(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return normalizeKeys(text === '' ? {} : JSON.parse(text));
  } catch (error) {
    throw new HttpError(400, `Request decode failed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Consul decodes bodies case-insensitively and accepts snake_case, so keys are compared as `checkid`, `ttl`... */
function normalizeKeys(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'Request decode failed: expected an object');
  return Object.fromEntries(Object.entries(value).map(([key, field]) => [key.replaceAll('_', '').toLowerCase(), field]));
}

function optionalString(fields: Record<string, unknown>, key: string): string | undefined {
  const value = fields[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new HttpError(400, `Request decode failed: ${key} must be a string`);
  return value;
}

function optionalNumber(fields: Record<string, unknown>, key: string): number | undefined {
  const value = fields[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number') throw new HttpError(400, `Request decode failed: ${key} must be a number`);
  return value;
}

/** Go decodes a JSON number into an int field only when it is a whole number. */
function optionalInteger(fields: Record<string, unknown>, key: string): number | undefined {
  const value = optionalNumber(fields, key);
  if (value !== undefined && !Number.isInteger(value)) throw new HttpError(400, `Request decode failed: ${key} must be an integer`);
  return value;
}

function stringArray(value: unknown): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    throw new HttpError(400, 'Request decode failed: tags must be strings');
  }
  return value;
}

function stringRecord(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value) || !Object.values(value).every((item) => typeof item === 'string')) {
    throw new HttpError(400, 'Request decode failed: meta values must be strings');
  }
  return { ...(value as Record<string, string>) };
}
