// Consul health entries → instances: each entry checked on its own, Consul's weighting, WAN addresses.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { consulSchema } from '../../src/config/schema.ts';
import { instanceAddress, MalformedAnswerError, mapHealthAnswer, type HealthEntry } from '../../src/discovery/consul-entries.ts';

const config = consulSchema.parse({ datacenters: ['dc1', 'dc2'] });

/** An entry as Consul sends it (the fields zonegate reads, plus some it ignores). */
function entry(id: string, overrides: { Service?: Record<string, unknown>; Node?: Record<string, unknown>; Checks?: unknown } = {}): Record<string, unknown> {
  return {
    Node: { ID: 'x', Node: 'node-1', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: { lan: '10.0.0.1', wan: '203.0.113.1' }, ...overrides.Node },
    Service: {
      ID: id,
      Service: 'orders',
      Tags: ['v1'],
      Address: '',
      Port: 8080,
      Meta: { zone: 'sh-a' },
      Weights: { Passing: 3, Warning: 1 },
      EnableTagOverride: false,
      ...overrides.Service,
    },
    Checks: 'Checks' in overrides ? overrides.Checks : [{ CheckID: 'serfHealth', Status: 'passing' }, { CheckID: `service:${id}`, Status: 'passing' }],
  };
}

const local = { datacenter: 'dc1', config };

describe('mapping a health answer', () => {
  test('a well-formed entry becomes an instance', () => {
    const { specs, skipped } = mapHealthAnswer([entry('a1')], local);
    assert.deepEqual(skipped, []);
    assert.deepEqual(specs, [
      { id: 'node-1/a1@dc1', service: 'orders', host: '10.0.0.1', port: 8080, zone: 'sh-a', weight: 3, tags: ['v1'], meta: { zone: 'sh-a' }, healthy: true, datacenter: 'dc1' },
    ]);
  });

  test('Checks: null is an instance without checks (healthy), not a broken answer', () => {
    const { specs, skipped } = mapHealthAnswer([entry('a1', { Checks: null }), entry('a2')], local);
    assert.deepEqual(skipped, []);
    assert.deepEqual(specs.map((s) => [s.id, s.healthy]), [['node-1/a1@dc1', true], ['node-1/a2@dc1', true]]);
  });

  test('a service without a port is skipped with the reason; the rest of the answer applies', () => {
    const withoutPort = entry('a1');
    delete (withoutPort['Service'] as Record<string, unknown>)['Port'];
    const { specs, skipped } = mapHealthAnswer([withoutPort, entry('a2', { Service: { Port: 0 } }), entry('a3')], local);
    assert.deepEqual(specs.map((s) => `${s.host}:${s.port}`), ['10.0.0.1:8080']);
    assert.equal(skipped.length, 2);
    assert.match(skipped[0]!, /^\[0\]\.Service\.Port: /);
    assert.match(skipped[1]!, /^\[1\]\.Service\.Port: the service has no port/);
  });

  test('malformed entries of every kind are skipped one by one', () => {
    const garbage = [null, 'x', 42, {}, entry('b', { Service: { Tags: 'v1' } }), entry('c', { Node: { Node: '' } }), entry('d', { Checks: [{ Status: 1 }] })];
    const { specs, skipped } = mapHealthAnswer([...garbage, entry('ok')], local);
    assert.deepEqual(specs.map((s) => s.id), ['node-1/ok@dc1']);
    assert.equal(skipped.length, garbage.length);
    assert.ok(skipped.every((line, i) => line.startsWith(`[${i}]`)), skipped.join('\n'));
  });

  test('an entry whose service and node have no address is skipped', () => {
    const { specs, skipped } = mapHealthAnswer([entry('a1', { Node: { Address: '', TaggedAddresses: null } })], local);
    assert.deepEqual(specs, []);
    assert.deepEqual(skipped, ['[0]: the service and its node have no address']);
  });

  test('an answer that is not a list is refused whole', () => {
    for (const body of [null, {}, 'No cluster leader', 42, { orders: [] }]) {
      assert.throws(() => mapHealthAnswer(body, local), MalformedAnswerError, JSON.stringify(body));
    }
  });

  test('an unknown check status counts as critical', () => {
    const { specs } = mapHealthAnswer([entry('a1', { Checks: [{ CheckID: 'c', Status: 'maintenance' }] })], local);
    assert.equal(specs[0]!.healthy, false);
  });
});

describe('addresses across datacenters (translate_wan_addrs)', () => {
  const parsed = (overrides: Parameters<typeof entry>[1]): HealthEntry => entry('a1', overrides) as unknown as HealthEntry;

  test('a remote datacenter instance is reached at its service WAN address and port', () => {
    const tagged = { Service: { Address: '10.1.0.5', TaggedAddresses: { lan: { Address: '10.1.0.5', Port: 8080 }, wan: { Address: '198.51.100.5', Port: 18080 } } } };
    const [spec] = mapHealthAnswer([entry('a1', tagged)], { datacenter: 'dc2', config }).specs;
    assert.deepEqual([spec!.host, spec!.port], ['198.51.100.5', 18080]);
    // the gateway's own datacenter keeps the LAN address
    const [own] = mapHealthAnswer([entry('a1', tagged)], local).specs;
    assert.deepEqual([own!.host, own!.port], ['10.1.0.5', 8080]);
  });

  test("wan_ipv4 stands in for wan; without a service WAN address, the node's WAN address replaces the node address", () => {
    assert.deepEqual(instanceAddress(parsed({ Service: { TaggedAddresses: { wan_ipv4: { Address: '198.51.100.7', Port: 0 } } } }), true), {
      host: '198.51.100.7',
      port: 8080,
    });
    assert.deepEqual(instanceAddress(parsed({}), true), { host: '203.0.113.1', port: 8080 });
    // Consul translates Service.Address only through the service's own tagged addresses
    assert.deepEqual(instanceAddress(parsed({ Service: { Address: '10.1.0.5' } }), true), { host: '10.1.0.5', port: 8080 });
    assert.deepEqual(instanceAddress(parsed({ Node: { TaggedAddresses: null } }), true), { host: '10.0.0.1', port: 8080 });
  });

  test('translateWanAddresses: false keeps the LAN address everywhere', () => {
    const off = consulSchema.parse({ datacenters: ['dc1', 'dc2'], translateWanAddresses: false });
    const [spec] = mapHealthAnswer([entry('a1')], { datacenter: 'dc2', config: off }).specs;
    assert.equal(spec!.host, '10.0.0.1');
  });
});
