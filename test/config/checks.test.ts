import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { MINIMAL_CONFIG, assertIssue, configErrorOf, editConfig, withGatewayLine } from './fixtures/config-files.ts';

const SHANGHAI = '    shanghai: [sh-a, sh-b]\n';

function withTopologyLines(lines: string): string {
  return editConfig(SHANGHAI, SHANGHAI + lines);
}

describe('cross-checks: topology', () => {
  it('rejects a gateway zone missing from topology', () => {
    const error = configErrorOf(editConfig('  zone: sh-a', '  zone: bj-a'));
    assertIssue(error, 2, 9, 'gateway.zone: zone "bj-a" is not in topology (known zones: sh-a, sh-b)');
  });

  it('rejects a zone listed in two cities, at the second listing', () => {
    const error = configErrorOf(withTopologyLines('    hangzhou: [hz-a, sh-b]\n'));
    assertIssue(error, 6, 22, 'topology.cn-east.hangzhou[1]: zone "sh-b" is listed in two cities: shanghai and hangzhou');
  });

  it('rejects a city listed in two regions, at the second key', () => {
    const error = configErrorOf(withTopologyLines('  cn-north:\n    shanghai: [bj-a]\n'));
    assertIssue(error, 7, 5, 'topology.cn-north.shanghai: city "shanghai" is listed in two regions: cn-east and cn-north');
  });

  it('rejects a name used as both a city and a zone, ignoring case as X-Region-ID does', () => {
    const error = configErrorOf(withTopologyLines('    hangzhou: [Shanghai]\n'));
    assertIssue(error, 6, 16, '"Shanghai" is both a city in region cn-east and a zone in city hangzhou');
  });

  it('rejects a region named like a zone', () => {
    const error = configErrorOf(withTopologyLines('  sh-a:\n    suzhou: [sz-a]\n'));
    assertIssue(error, 6, 3, 'topology.sh-a: "sh-a" is both a zone in city shanghai and a region');
  });
});

describe('cross-checks: routes', () => {
  it('rejects a weighted entry naming an unknown service', () => {
    const weighted = '    weighted: [{ service: orders, weight: 1 }, { service: nope, weight: 1 }]';
    const error = configErrorOf(editConfig('    service: orders', weighted));
    assertIssue(error, 12, 59, 'routes[0].weighted[1].service: unknown service "nope"');
  });

  it('accepts any service name when Consul is the registry', () => {
    const text = editConfig('    service: orders', '    service: payments', editConfig('  static:\n', '  consul: {}\n  static:\n'));
    assert.equal(loadConfigText(text, 'routes.yaml', {}).routes[0]?.service, 'payments');
  });

  it('rejects a burst smaller than the cost of one request', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    rateLimit: { rate: 10/s, burst: 1, cost: 2 }\n`);
    assertIssue(error, 13, 37, 'routes[0].rateLimit.burst: burst 1 is smaller than cost 2');
  });

  it('rejects a per-try timeout longer than the route timeout', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    timeout: 1s\n    retries: { perTryTimeout: 2s }\n`);
    assertIssue(error, 14, 31, 'routes[0].retries.perTryTimeout: perTryTimeout 2s is longer than the route timeout 1s');
  });
});

describe('cross-checks: instance ids', () => {
  const ORDERS = '    orders: [{ address: 127.0.0.1:9001, zone: sh-a }]\n';
  const withInstances = (lines: string) => editConfig(ORDERS, lines);

  it('rejects the same explicit id in two services, naming the first', () => {
    const error = configErrorOf(
      withInstances(`${ORDERS}    a: [{ address: 10.0.0.1:80, zone: sh-a, id: node-1 }]\n    b: [{ address: 10.0.0.2:80, zone: sh-a, id: node-1 }]\n`),
    );
    assertIssue(
      error,
      10,
      49,
      'discovery.static.b[0].id: instance id "node-1" is already the id of discovery.static.a[0]; ids must be unique, as each instance has its own circuit breaker',
    );
    assert.equal(error.issues.length, 1, error.format());
  });

  it('rejects the same address twice in one service, where both would get the same id', () => {
    const error = configErrorOf(
      withInstances('    orders:\n      - { address: 127.0.0.1:9001, zone: sh-a }\n      - { address: 127.0.0.1:9001, zone: sh-b }\n'),
    );
    assertIssue(error, 10, 20, 'discovery.static.orders[1].address: 127.0.0.1:9001 is listed twice for service orders (also discovery.static.orders[0])');
  });

  it('rejects an explicit id equal to the id another instance gets from its service and address', () => {
    const error = configErrorOf(withInstances(`${ORDERS}    b: [{ address: 10.0.0.2:80, zone: sh-a, id: orders@127.0.0.1:9001 }]\n`));
    assertIssue(error, 9, 49, 'instance id "orders@127.0.0.1:9001" is already the id of discovery.static.orders[0], derived from its service and address');
  });

  it('accepts one address in two services, and twice in one service under distinct ids', () => {
    const text = withInstances(
      `${ORDERS}    b: [{ address: 127.0.0.1:9001, zone: sh-a }]\n` +
        '    c:\n      - { address: 127.0.0.1:9002, zone: sh-a, id: c-1 }\n      - { address: 127.0.0.1:9002, zone: sh-a, id: c-2 }\n',
    );
    assert.deepEqual(Object.keys(loadConfigText(text, 'routes.yaml', {}).discovery.static), ['orders', 'b', 'c']);
  });
});

describe('cross-checks: admin listener', () => {
  it('rejects a non-loopback admin address without a token', () => {
    const error = configErrorOf(withGatewayLine('  admin: 0.0.0.0:9901'));
    assertIssue(error, 3, 10, 'gateway.admin: the admin listener on 0.0.0.0 is reachable from other hosts');
  });

  it('rejects an admin listener on all interfaces without a token', () => {
    const error = configErrorOf(withGatewayLine('  admin: ":9901"'));
    assertIssue(error, 3, 10, 'the admin listener on all interfaces is reachable');
  });

  it('accepts a non-loopback admin address with a token, and IPv6 loopback without one', () => {
    const withToken = withGatewayLine('  admin: 0.0.0.0:9901\n  adminToken: s3cret');
    assert.equal(loadConfigText(withToken, 'routes.yaml', {}).gateway.admin.host, '0.0.0.0');
    const ipv6Loopback = withGatewayLine('  admin: "[::1]:9901"');
    assert.equal(loadConfigText(ipv6Loopback, 'routes.yaml', {}).gateway.admin.host, '::1');
  });
});

describe('cross-checks: listeners', () => {
  it('rejects an admin listener on the port of the proxy listener (which takes every interface by default)', () => {
    const error = configErrorOf(withGatewayLine('  admin: 127.0.0.1:8080'));
    assertIssue(error, 3, 10, "gateway.admin: port 8080 is also gateway.listen's: the admin listener needs a port of its own");
  });

  it('accepts one port on two distinct addresses, and port 0 for both', () => {
    const distinct = withGatewayLine('  listen: 127.0.0.1:9000\n  admin: 127.0.0.2:9000');
    assert.equal(loadConfigText(distinct, 'routes.yaml', {}).gateway.admin.port, 9000);
    // 0.0.0.0 takes IPv4 only: [::1] on the same port binds beside it
    const dualStack = withGatewayLine('  listen: 0.0.0.0:8080\n  admin: "[::1]:8080"');
    assert.equal(loadConfigText(dualStack, 'routes.yaml', {}).gateway.admin.host, '::1');
    const anyPort = withGatewayLine('  listen: 127.0.0.1:0\n  admin: 127.0.0.1:0');
    assert.equal(loadConfigText(anyPort, 'routes.yaml', {}).gateway.listen.port, 0);
  });
});
