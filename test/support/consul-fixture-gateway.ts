// A gateway discovering through the Consul fixture: the config, the probes and the snapshot-file scratch space
// the discovery tests share.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConsulFixture } from './consul-fixture.ts';
import type { TestGateway } from './gateway.ts';

/** sh-a and sh-b are cities of one region; bj-a is another region's zone, served only from dc2 in these tests */
export const TOPOLOGY = `
topology:
  cn-east: { shanghai: [sh-a, sh-b] }
  cn-north: { beijing: [bj-a] }`;

/** One route to `orders`, discovered in dc1 and dc2; `extra` is appended inside `discovery.consul`. */
export function gatewayYaml(consul: ConsulFixture, extra = ''): string {
  return `
gateway: { zone: sh-a, routingHeaders: true }
${TOPOLOGY}
discovery:
  consul: { address: ${consul.address}, datacenters: [dc1, dc2], wait: 30s${extra} }
routes:
  - { name: orders, match: { prefix: / }, service: orders, locality: { failoverThreshold: 0.5 } }
`;
}

/** One request from a caller in `region`: its status and the instance that answered it. */
export async function servedBy(gw: Pick<TestGateway, 'url'>, region = 'sh-a'): Promise<{ status: number; upstream: string | null }> {
  const res = await fetch(`${gw.url}/x`, { headers: { 'x-region-id': region } });
  await res.arrayBuffer();
  return { status: res.status, upstream: res.headers.get('x-zonegate-upstream') };
}

export async function readyz(adminUrl: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${adminUrl}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** A scratch directory for a snapshot file; `remove` deletes it. */
export async function snapshotScratch(): Promise<{ file: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'zonegate-snapshot-'));
  return { file: join(dir, 'snapshot.json'), remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Every kind of bad snapshot file a gateway may meet after a crash, a full disk or a hand edit; `instance` is a good one. */
export function badSnapshotFiles(instance: object): Readonly<Record<string, string>> {
  return {
    empty: '',
    truncated: JSON.stringify({ orders: [instance] }).slice(0, 40),
    null: 'null',
    'a null instance': '{"orders":[null]}',
    'an object instead of a list': '{"orders":{}}',
    binary: '\u0000\u0001\u00ff\u00fe garbage \u0007',
    'an instance without a port': JSON.stringify({ orders: [{ ...instance, port: undefined }] }),
    'a list at the top': JSON.stringify([instance]),
  };
}
