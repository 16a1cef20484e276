// Discovery under `zonegate run --workers`: the primary runs the one Consul watch per service and datacenter
// (and writes the snapshot file), and sends each changed instance list to every worker; Consul's load does not
// grow with the number of workers. Static services are loaded by each worker from the config itself.
import type { Config } from '../config/schema.ts';
import type { ConsulDiscovery, MissingService } from '../discovery/consul.ts';
import type { InstanceSpec } from '../discovery/instance.ts';
import { Registry } from '../discovery/registry.ts';
import type { Logger } from '../observability/logger.ts';
import { RouteTable } from '../routing/route-table.ts';
import { Topology } from '../topology.ts';
import type { SnapshotMessage } from './messages.ts';

/** Routed services no static list provides: the ones Consul answers for. */
function consulServices(config: Config): Set<string> {
  return new Set([...new RouteTable(config.routes).services()].filter((service) => !Object.hasOwn(config.discovery.static, service)));
}

export class PrimaryDiscovery {
  readonly #registry: Registry;
  readonly #logger: Logger;
  #consul: ConsulDiscovery | undefined;
  #consulConfig = '';

  constructor(config: Config, logger: Logger, publish: (message: SnapshotMessage) => void) {
    this.#logger = logger;
    this.#registry = new Registry(new Topology(config.topology));
    this.#registry.on('change', (snapshot) => {
      const specs = this.#registry.specs(snapshot.service);
      if (specs) publish({ kind: 'zonegate:snapshot', service: snapshot.service, specs });
    });
  }

  /** Starts watching what `config` routes to; resolves once Consul has answered or `initialFetchTimeout` passed. */
  async start(config: Config): Promise<void> {
    await this.configure(config);
    await this.#consul?.warm();
  }

  /** Applies a config: a changed `discovery.consul` gets a new client; the watched services follow the routes. */
  async configure(config: Config): Promise<void> {
    this.#registry.setTopology(new Topology(config.topology));
    const consul = config.discovery.consul;
    const text = JSON.stringify(consul ?? null);
    if (text !== this.#consulConfig) {
      this.#consul?.stop();
      this.#consul = undefined;
      if (consul) {
        const { ConsulDiscovery } = await import('../discovery/consul.ts');
        this.#consul = new ConsulDiscovery(consul, this.#registry, this.#logger);
      }
      this.#consulConfig = text;
    }
    const services = this.#consul ? consulServices(config) : new Set<string>();
    this.#consul?.watch(services);
    this.#registry.retain(services);
  }

  /** What the primary knows now: the instances a starting worker begins with. */
  snapshots(): [string, readonly InstanceSpec[]][] {
    return [...this.#registry.services()].map((service) => [service, this.#registry.specs(service)!]);
  }

  missing(): MissingService[] {
    return this.#consul?.missing() ?? [];
  }

  stop(): void {
    this.#consul?.stop();
    this.#consul = undefined;
  }
}
