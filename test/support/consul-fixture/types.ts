// The shapes the fixture speaks: Consul's JSON for health entries, and the inputs that register services.

export type CheckStatus = 'passing' | 'warning' | 'critical';

export function isCheckStatus(value: unknown): value is CheckStatus {
  return value === 'passing' || value === 'warning' || value === 'critical';
}

export interface ServiceWeights {
  readonly Passing: number;
  readonly Warning: number;
}

/** Consul's structs.ValidateWeights: the reason a registration's weights are refused, or undefined. */
export function weightsError(weights: ServiceWeights): string | undefined {
  if (weights.Passing < 1) return 'Passing must be greater than 0';
  if (weights.Warning < 0) return 'Warning must be greater or equal than 0';
  if (weights.Passing > 65535 || weights.Warning > 65535) return 'DNS Weight must be between 0 and 65535';
  return undefined;
}

/** How a check is run; the fixture only runs HTTP checks, and only when asked to. */
export interface CheckDefinition {
  readonly http?: string;
  readonly method?: string;
  readonly tcp?: string;
  readonly grpc?: string;
  readonly ttl?: string;
  readonly interval?: string;
  readonly timeout?: string;
}

export interface CheckInput {
  /** defaults to `service:<id>`, or `service:<id>:<n>` when the service has several checks */
  readonly id?: string;
  readonly name?: string;
  readonly status: CheckStatus;
  readonly notes?: string;
  readonly output?: string;
  readonly definition?: CheckDefinition;
}

/** Service.TaggedAddresses values (Consul's structs.ServiceAddress) */
export interface ServiceAddressJson {
  readonly Address: string;
  readonly Port: number;
}

export interface NodeInput {
  readonly name: string;
  readonly address?: string;
  /** Node.TaggedAddresses.wan / wan_ipv4; default: the node address (what an agent without advertise_addr_wan reports) */
  readonly wanAddress?: string;
  readonly meta?: Readonly<Record<string, string>>;
}

export interface ServiceRegistration {
  readonly node: NodeInput;
  readonly id: string;
  readonly name: string;
  readonly tags: readonly string[];
  readonly address: string;
  readonly port: number;
  readonly meta: Readonly<Record<string, string>>;
  readonly weights: ServiceWeights;
  /** Service.TaggedAddresses (lan, wan, lan_ipv4, wan_ipv4...); omitted from answers when empty, as Consul does */
  readonly taggedAddresses?: Readonly<Record<string, ServiceAddressJson>>;
  readonly checks: readonly CheckInput[];
}

export interface HealthCheckJson {
  Node: string;
  CheckID: string;
  Name: string;
  Status: CheckStatus;
  Notes: string;
  Output: string;
  ServiceID: string;
  ServiceName: string;
  ServiceTags: string[];
  Type: string;
  Definition: Record<string, string>;
  CreateIndex: number;
  ModifyIndex: number;
}

export interface HealthServiceEntryJson {
  Node: {
    ID: string;
    Node: string;
    Address: string;
    Datacenter: string;
    TaggedAddresses: Record<string, string>;
    Meta: Record<string, string>;
    CreateIndex: number;
    ModifyIndex: number;
  };
  Service: {
    ID: string;
    Service: string;
    Tags: string[];
    Address: string;
    Meta: Record<string, string>;
    Port: number;
    Weights: { Passing: number; Warning: number };
    TaggedAddresses?: Record<string, ServiceAddressJson>;
    EnableTagOverride: boolean;
    CreateIndex: number;
    ModifyIndex: number;
  };
  Checks: HealthCheckJson[];
}
