// The fixture's state store: per datacenter, nodes with their services and checks, plus the Raft-like
// indexes Consul reports. Each datacenter is its own Raft cluster in Consul, so each keeps its own index.
// A write that changes nothing does not advance any index, as in Consul's state store.
import { randomUUID } from 'node:crypto';
import type {
  CheckDefinition,
  CheckStatus,
  HealthCheckJson,
  HealthServiceEntryJson,
  NodeInput,
  ServiceRegistration,
} from './types.ts';

type Indexed<T> = { content: T; createIndex: number; modifyIndex: number };
type NodeContent = Omit<HealthServiceEntryJson['Node'], 'CreateIndex' | 'ModifyIndex'>;
type ServiceContent = Omit<HealthServiceEntryJson['Service'], 'CreateIndex' | 'ModifyIndex'>;
type CheckJsonContent = Omit<HealthCheckJson, 'CreateIndex' | 'ModifyIndex'>;
/** The definition is kept beside the JSON so a changed definition counts as a change, like in Consul. */
interface CheckContent {
  json: CheckJsonContent;
  definition: CheckDefinition;
}

interface NodeState {
  record: Indexed<NodeContent>;
  services: Map<string, Indexed<ServiceContent>>;
  checks: Map<string, Indexed<CheckContent>>;
}

interface DatacenterState {
  readonly name: string;
  index: number;
  readonly nodes: Map<string, NodeState>;
  /** keyed by lower-cased service name: Consul looks services up case-insensitively */
  readonly serviceIndexes: Map<string, number>;
}

interface WriteTransaction {
  readonly index: number;
  readonly touchedServices: Set<string>;
  changed: boolean;
}

/** A check the fixture knows how to run itself. */
export interface HttpCheckTarget {
  readonly datacenter: string;
  readonly node: string;
  readonly checkId: string;
  readonly url: string;
  readonly method: string;
  readonly timeout: string | undefined;
}

export interface CatalogListener {
  /** a write advanced the datacenter's index */
  committed(datacenter: string): void;
  /** the datacenter's state was replaced wholesale (a snapshot restore): every watcher must wake */
  restored(datacenter: string): void;
}

const SERF_CHECK_ID = 'serfHealth';

export class Catalog {
  readonly #datacenters = new Map<string, DatacenterState>();
  readonly #listener: CatalogListener;

  constructor(datacenters: readonly string[], listener: CatalogListener) {
    for (const name of datacenters) this.#datacenters.set(name, { name, index: 1, nodes: new Map(), serviceIndexes: new Map() });
    this.#listener = listener;
  }

  hasDatacenter(name: string): boolean {
    return this.#datacenters.has(name);
  }

  /** X-Consul-Index for a health query: the service's last change, or the datacenter's index when it never existed. */
  indexOf(datacenter: string, service: string): number {
    const dc = this.#datacenter(datacenter);
    return Math.max(1, dc.serviceIndexes.get(service.toLowerCase()) ?? dc.index);
  }

  /** `/v1/health/service/:name` entries, ordered like Consul's (node, then service ID; checks by ID). */
  healthService(datacenter: string, service: string): HealthServiceEntryJson[] {
    const dc = this.#datacenter(datacenter);
    const wanted = service.toLowerCase();
    const entries: HealthServiceEntryJson[] = [];
    for (const [, node] of sortedEntries(dc.nodes)) {
      for (const [serviceId, instance] of sortedEntries(node.services)) {
        if (instance.content.Service.toLowerCase() !== wanted) continue;
        const checks = sortedEntries(node.checks)
          .map(([, check]) => withIndexes(check.content.json, check))
          .filter((check) => check.ServiceID === '' || check.ServiceID === serviceId);
        entries.push({
          Node: withIndexes(node.record.content, node.record),
          Service: withIndexes(instance.content, instance),
          Checks: checks,
        });
      }
    }
    return entries;
  }

  /** Adds or replaces a service instance; checks it no longer declares are removed, as the agent does. */
  register(datacenter: string, registration: ServiceRegistration): string[] {
    const dc = this.#datacenter(datacenter);
    return this.#write(dc, (tx) => {
      const node = this.#upsertNode(dc, registration.node, tx);
      const { id, name } = registration;
      const previous = node.services.get(id);
      const affected = previous ? [name, previous.content.Service] : [name];
      const service: ServiceContent = {
        ID: id,
        Service: name,
        Tags: [...registration.tags],
        Address: registration.address,
        Meta: { ...registration.meta },
        Port: registration.port,
        Weights: { ...registration.weights },
        ...(registration.taggedAddresses && Object.keys(registration.taggedAddresses).length > 0
          ? { TaggedAddresses: structuredClone(registration.taggedAddresses) }
          : {}),
        EnableTagOverride: false,
      };
      node.services.set(id, stamp(previous, service, tx, affected));
      const checkIds = registration.checks.map((check, position) => {
        const suffix = registration.checks.length > 1 ? `:${position + 1}` : '';
        const checkId = check.id ?? `service:${id}${suffix}`;
        const definition = { ...check.definition };
        const json: CheckJsonContent = {
          Node: registration.node.name,
          CheckID: checkId,
          Name: check.name ?? `Service '${name}' check`,
          Status: check.status,
          Notes: check.notes ?? '',
          Output: check.output ?? '',
          ServiceID: id,
          ServiceName: name,
          ServiceTags: [...registration.tags],
          Type: checkType(definition),
          Definition: definitionJson(definition),
        };
        node.checks.set(checkId, stamp(node.checks.get(checkId), { json, definition }, tx, affected));
        return checkId;
      });
      for (const [checkId, check] of node.checks) {
        if (check.content.json.ServiceID === id && !checkIds.includes(checkId)) {
          node.checks.delete(checkId);
          markChanged(tx, affected);
        }
      }
      return checkIds;
    });
  }

  /** Removes a service instance and its checks; `node` narrows it when several nodes use the same ID. */
  deregister(datacenter: string, serviceId: string, node?: string): boolean {
    const dc = this.#datacenter(datacenter);
    return this.#write(dc, (tx) => {
      for (const [nodeName, state] of dc.nodes) {
        if (node !== undefined && nodeName !== node) continue;
        const instance = state.services.get(serviceId);
        if (!instance) continue;
        state.services.delete(serviceId);
        for (const [checkId, check] of state.checks) {
          if (check.content.json.ServiceID === serviceId) state.checks.delete(checkId);
        }
        markChanged(tx, [instance.content.Service]);
      }
      return tx.changed;
    });
  }

  /** Sets every check with this ID (on `node` only, when given); returns how many exist. */
  setCheck(datacenter: string, checkId: string, status: CheckStatus, options: { node?: string; output?: string } = {}): number {
    const dc = this.#datacenter(datacenter);
    return this.#write(dc, (tx) => {
      let found = 0;
      for (const [nodeName, state] of dc.nodes) {
        if (options.node !== undefined && nodeName !== options.node) continue;
        const check = state.checks.get(checkId);
        if (!check) continue;
        found += 1;
        const json = { ...check.content.json, Status: status, Output: options.output ?? check.content.json.Output };
        const affected = json.ServiceID === '' ? serviceNamesOn(state) : [json.ServiceName];
        stamp(check, { json, definition: check.content.definition }, tx, affected);
      }
      return found;
    });
  }

  /** Whether `node` in `datacenter` carries a check with this ID, and whether it is a TTL check. */
  checkKind(datacenter: string, node: string, checkId: string): 'ttl' | 'other' | undefined {
    const check = this.#datacenter(datacenter).nodes.get(node)?.checks.get(checkId);
    if (!check) return undefined;
    return check.content.definition.ttl ? 'ttl' : 'other';
  }

  hasService(datacenter: string, node: string, serviceId: string): boolean {
    return this.#datacenter(datacenter).nodes.get(node)?.services.has(serviceId) ?? false;
  }

  httpChecks(): HttpCheckTarget[] {
    const targets: HttpCheckTarget[] = [];
    for (const dc of this.#datacenters.values()) {
      for (const [node, state] of dc.nodes) {
        for (const [checkId, check] of state.checks) {
          const { http, method, timeout } = check.content.definition;
          if (http) targets.push({ datacenter: dc.name, node, checkId, url: http, method: method ?? 'GET', timeout });
        }
      }
    }
    return targets;
  }

  /** Moves the datacenter's index (and every service's) back to `to`, as a snapshot restore would. */
  resetIndex(datacenter: string, to: number): void {
    const dc = this.#datacenter(datacenter);
    dc.index = to;
    for (const service of dc.serviceIndexes.keys()) dc.serviceIndexes.set(service, to);
    for (const node of dc.nodes.values()) {
      const records: Indexed<unknown>[] = [node.record, ...node.services.values(), ...node.checks.values()];
      for (const record of records) {
        record.createIndex = Math.min(record.createIndex, to);
        record.modifyIndex = Math.min(record.modifyIndex, to);
      }
    }
    this.#listener.restored(dc.name);
  }

  datacenterNames(): string[] {
    return [...this.#datacenters.keys()];
  }

  #datacenter(name: string): DatacenterState {
    const dc = this.#datacenters.get(name);
    if (!dc) throw new Error(`unknown datacenter ${JSON.stringify(name)}`);
    return dc;
  }

  #write<T>(dc: DatacenterState, apply: (tx: WriteTransaction) => T): T {
    const tx: WriteTransaction = { index: dc.index + 1, touchedServices: new Set(), changed: false };
    const result = apply(tx);
    if (tx.changed) {
      dc.index = tx.index;
      for (const service of tx.touchedServices) dc.serviceIndexes.set(service, tx.index);
      this.#listener.committed(dc.name);
    }
    return result;
  }

  #upsertNode(dc: DatacenterState, input: NodeInput, tx: WriteTransaction): NodeState {
    const existing = dc.nodes.get(input.name);
    const previous = existing?.record.content;
    const address = input.address ?? previous?.Address ?? '127.0.0.1';
    const wan = input.wanAddress ?? (input.address === undefined ? previous?.TaggedAddresses['wan'] : undefined) ?? address;
    const content: NodeContent = {
      ID: previous?.ID ?? randomUUID(),
      Node: input.name,
      Address: address,
      Datacenter: dc.name,
      TaggedAddresses: { lan: address, lan_ipv4: address, wan, wan_ipv4: wan },
      Meta: input.meta ? { ...DEFAULT_NODE_META, ...input.meta } : (previous?.Meta ?? { ...DEFAULT_NODE_META }),
    };
    if (existing) {
      stamp(existing.record, content, tx, serviceNamesOn(existing));
      return existing;
    }
    const serfHealth: CheckContent = { json: serfHealthCheck(input.name), definition: {} };
    const created: NodeState = {
      record: stamp(undefined, content, tx, []),
      services: new Map(),
      checks: new Map([[SERF_CHECK_ID, stamp(undefined, serfHealth, tx, [])]]),
    };
    dc.nodes.set(input.name, created);
    return created;
  }
}

/** Consul agents always carry this node meta key. */
const DEFAULT_NODE_META: Readonly<Record<string, string>> = { 'consul-network-segment': '' };

/** The record holding `content`: `existing` updated in place, or a new one; unchanged content is left alone. */
function stamp<T>(existing: Indexed<T> | undefined, content: T, tx: WriteTransaction, services: readonly string[]): Indexed<T> {
  if (existing && JSON.stringify(existing.content) === JSON.stringify(content)) return existing;
  markChanged(tx, services);
  if (!existing) return { content, createIndex: tx.index, modifyIndex: tx.index };
  existing.content = content;
  existing.modifyIndex = tx.index;
  return existing;
}

function withIndexes<T extends object>(content: T, record: Indexed<unknown>): T & { CreateIndex: number; ModifyIndex: number } {
  return { ...structuredClone(content), CreateIndex: record.createIndex, ModifyIndex: record.modifyIndex };
}

function sortedEntries<V>(map: ReadonlyMap<string, V>): [string, V][] {
  return [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function markChanged(tx: WriteTransaction, services: readonly string[]): void {
  tx.changed = true;
  for (const service of services) tx.touchedServices.add(service.toLowerCase());
}

function serviceNamesOn(node: NodeState): string[] {
  return [...node.services.values()].map((instance) => instance.content.Service);
}

function serfHealthCheck(node: string): CheckJsonContent {
  return {
    Node: node,
    CheckID: SERF_CHECK_ID,
    Name: 'Serf Health Status',
    Status: 'passing',
    Notes: '',
    Output: 'Agent alive and reachable',
    ServiceID: '',
    ServiceName: '',
    ServiceTags: [],
    Type: '',
    Definition: {},
  };
}

function checkType(definition: CheckDefinition): string {
  if (definition.ttl) return 'ttl';
  if (definition.http) return 'http';
  if (definition.tcp) return 'tcp';
  if (definition.grpc) return 'grpc';
  return '';
}

function definitionJson(definition: CheckDefinition): Record<string, string> {
  const json: Record<string, string> = {};
  if (definition.http) json['HTTP'] = definition.http;
  if (definition.method) json['Method'] = definition.method;
  if (definition.tcp) json['TCP'] = definition.tcp;
  if (definition.grpc) json['GRPC'] = definition.grpc;
  if (definition.interval) json['Interval'] = definition.interval;
  if (definition.timeout) json['Timeout'] = definition.timeout;
  return json;
}
