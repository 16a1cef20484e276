// `zonegate demo --consul <addr>`: the simulated instances register in a real Consul (Meta.zone plus an HTTP
// check), so the same demo runs on Consul discovery; they deregister on exit. (The client cannot send
// Service.Weights, so instance weights stay Consul's default of 1.)
import { consulClient } from '../discovery/consul.ts';
import type { InstanceSpec } from '../discovery/instance.ts';

export interface Registration {
  deregister(): Promise<void>;
}

export async function registerInConsul(address: string, instances: readonly InstanceSpec[]): Promise<Registration> {
  const consul = consulClient({ address, token: '', stale: false });
  const ids: string[] = [];
  for (const instance of instances) {
    const id = `${instance.service}-${instance.port}`;
    await consul.agent.service.register({
      name: instance.service,
      id,
      address: instance.host,
      port: instance.port,
      meta: { zone: instance.zone },
      check: { name: `${id} http`, http: `http://${instance.host}:${instance.port}/healthz`, interval: '2s', timeout: '1s' },
    });
    ids.push(id);
  }
  return {
    async deregister() {
      await Promise.allSettled(ids.map((id) => consul.agent.service.deregister(id)));
      consul.destroy();
    },
  };
}
