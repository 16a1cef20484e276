import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/config/errors.ts';
import { loadConfigFile, loadConfigFileWithText } from '../../src/config/load.ts';
import type { Env } from '../../src/config/interpolate.ts';
import { FIXTURES, MINIMAL_CONFIG, assertIssue, editConfig, makeTempDir, withGatewayLine } from './fixtures/config-files.ts';
import type { TempDir } from './fixtures/config-files.ts';

let temp: TempDir;
before(async () => {
  temp = await makeTempDir();
});
after(() => temp.remove());

let caseNumber = 0;
async function rejectionOf(text: string, env: Env = {}): Promise<{ error: ConfigError; path: string }> {
  const path = await temp.write(`case-${++caseNumber}.yaml`, text);
  const error = await loadConfigFile(path, env).then(
    () => assert.fail('expected the config to be rejected'),
    (thrown: unknown) => thrown,
  );
  assert.ok(error instanceof ConfigError, `expected a ConfigError, got ${String(error)}`);
  return { error, path };
}


describe('loadConfigFile: a valid file', () => {
  it('loads the minimal config', async () => {
    const config = await loadConfigFile(await temp.write('minimal.yaml', MINIMAL_CONFIG), {});
    assert.equal(config.routes[0]?.service, 'orders');
  });

  it('loads the DESIGN.md example with typed values', async () => {
    const config = await loadConfigFile(join(FIXTURES, 'routes.yaml'), { PORT: '9090' });
    assert.deepEqual(config.gateway.listen, { host: '0.0.0.0', port: 9090 });
    assert.deepEqual(config.gateway.admin, { host: '127.0.0.1', port: 9901 });
    assert.equal(config.gateway.adminToken, '');
    assert.deepEqual(config.gateway.trustedProxies, ['10.0.0.0/8']);
    assert.equal(config.gateway.limits.headersTimeout, 15_000);
    assert.equal(config.gateway.limits.requestTimeout, 60_000);
    assert.deepEqual(config.topology['cn-north'], { beijing: ['bj-a', 'bj-c'] });
    const instances = config.discovery.static['order-service'] ?? [];
    assert.deepEqual(
      instances.map((i) => [i.address.port, i.zone, i.weight]),
      [[9001, 'sh-a', 1], [9002, 'sh-b', 2], [9003, 'bj-a', 1]],
    );
    assert.equal(config.redis?.url, '');
    const route = config.routes[0]!;
    assert.equal(route.timeout, 5000);
    assert.equal(route.retries.perTryTimeout, 2000);
    assert.equal(route.retries.backoff, 25);
    assert.deepEqual(route.retries.on, ['connect-failure', 'reset', 502, 503, 504]);
    assert.equal(route.rateLimit?.rate.perSecond, 100);
    assert.equal(route.rateLimit?.burst, 200);
    assert.equal(route.breaker.resetTimeout, 10_000);
    assert.deepEqual(route.fallback?.json, { message: 'orders are read-only right now' });
  });

  it('uses the default of ${PORT:-8080} when PORT is unset', async () => {
    const config = await loadConfigFile(join(FIXTURES, 'routes.yaml'), {});
    assert.equal(config.gateway.listen.port, 8080);
  });

  it('takes YAML merge keys: a route can reuse another one\'s settings', async () => {
    const text = editConfig('  - name: orders\n', '  - &orders\n    name: orders\n', MINIMAL_CONFIG) +
      '    timeout: 3s\n  - <<: *orders\n    name: orders-v2\n    match: { prefix: /v2/orders }\n';
    const config = await loadConfigFile(await temp.write('merge.yaml', text), {});
    const [first, second] = config.routes;
    assert.deepEqual([second?.name, second?.match.prefix, second?.service, second?.timeout], ['orders-v2', '/v2/orders', 'orders', 3000]);
    assert.equal(first?.name, 'orders');
  });

  it('returns the file text next to the config', async () => {
    const path = await temp.write('with-text.yaml', MINIMAL_CONFIG);
    const loaded = await loadConfigFileWithText(path, {});
    assert.equal(loaded.text, MINIMAL_CONFIG);
    assert.equal(loaded.config.gateway.zone, 'sh-a');
  });
});

// the line numbers below refer to MINIMAL_CONFIG's layout
describe('loadConfigFile: mistakes point at the exact line and column', () => {
  const cases: Array<{ name: string; text: string; env?: Env; at: [number, number]; message: string }> = [
    {
      name: 'unknown key, with a suggestion',
      text: editConfig('prefix: /orders', 'prefx: /orders'),
      at: [11, 14],
      message: 'routes[0].match.prefx: unknown key "prefx" (did you mean "prefix"?)',
    },
    {
      name: 'a renamed key names its new name',
      text: editConfig('    service: orders\n', '    service: orders\n    retries: { attempts: 2 }\n'),
      at: [13, 16],
      message: 'routes[0].retries.attempts: "attempts" is now maxRetries (it counts retries after the first try; the access log\'s `attempts` counts tries)',
    },
    {
      name: 'bad duration',
      text: withGatewayLine('  limits: { headersTimeout: 5 seconds }'),
      at: [3, 29],
      message: 'gateway.limits.headersTimeout: expected a duration like 250ms, 5s or 1m, got "5 seconds"',
    },
    {
      name: 'bad rate',
      text: `${MINIMAL_CONFIG}    rateLimit: { rate: 100 per second }\n`,
      at: [13, 24],
      message: 'routes[0].rateLimit.rate: expected a rate like 100/s or 6000/m, got "100 per second"',
    },
    {
      name: 'bad address',
      text: editConfig('127.0.0.1:9001', 'localhost'),
      at: [8, 25],
      message: 'discovery.static.orders[0].address: expected host:port (e.g. 127.0.0.1:9001), got "localhost"',
    },
    {
      name: 'missing required key, at the parent mapping',
      text: editConfig('  zone: sh-a\n', '  listen: 0.0.0.0:8080\n'),
      at: [2, 3],
      message: 'gateway.zone: required key is missing (expected a string)',
    },
    {
      name: 'wrong type',
      text: withGatewayLine('  routingHeaders: yes'),
      at: [3, 19],
      message: 'gateway.routingHeaders: expected true or false, got "yes"',
    },
    {
      name: 'value outside an enum',
      text: `${MINIMAL_CONFIG}    locality: { remote: sometimes }\n`,
      at: [13, 25],
      message: 'routes[0].locality.remote: expected one of read-only, any, never, got "sometimes"',
    },
    {
      name: 'route naming an unknown service',
      text: editConfig('    service: orders', '    service: payments'),
      at: [12, 14],
      message: 'routes[0].service: unknown service "payments": not in discovery.static (known services: orders)',
    },
    {
      name: 'static instance in a zone missing from topology',
      text: editConfig('zone: sh-a }', 'zone: sh-x }'),
      at: [8, 47],
      message: 'discovery.static.orders[0].zone: zone "sh-x" is not in topology (known zones: sh-a, sh-b)',
    },
    {
      name: 'duplicate route name',
      text: `${MINIMAL_CONFIG}  - name: orders\n    match: { prefix: /other }\n    service: orders\n`,
      at: [13, 11],
      message: 'routes[1].name: duplicate route name "orders" (also routes[0])',
    },
    {
      name: 'prefix and path both set',
      text: editConfig('{ prefix: /orders }', '{ prefix: /orders, path: /x }'),
      at: [11, 12],
      message: 'routes[0].match: match needs exactly one of prefix or path',
    },
    {
      name: 'route with neither service nor weighted',
      text: editConfig('    service: orders\n', ''),
      at: [10, 5],
      message: 'routes[0]: a route needs exactly one of service or weighted',
    },
    {
      name: 'Redis URL ioredis cannot parse (would fail only at start)',
      text: `${MINIMAL_CONFIG}redis:\n  url: redis://127.0.0.1:6380x\n`,
      at: [14, 8],
      message: 'redis.url: expected redis://[user:password@]host:port[/db]',
    },
    {
      name: 'Consul address that is not a URL',
      text: editConfig('  static:\n', '  consul: { address: "http://consul:85x00" }\n  static:\n'),
      at: [7, 22],
      message: 'discovery.consul.address: expected http://host:port, https://host:port or host:port, got "http://consul:85x00"',
    },
    {
      name: 'YAML syntax error',
      text: editConfig('  zone: sh-a', '  zone: sh-a: sh-b'),
      at: [2, 9],
      message: 'YAML syntax: Nested mappings are not allowed in compact mappings',
    },
    {
      name: 'duplicate key',
      text: withGatewayLine('  zone: sh-b'),
      at: [3, 3],
      message: 'duplicate key "zone"',
    },
    {
      name: 'unset environment variable without a default',
      text: editConfig('  zone: sh-a', '  zone: ${GATEWAY_ZONE}'),
      at: [2, 9],
      message: 'gateway.zone: environment variable GATEWAY_ZONE is not set',
    },
    {
      name: 'unset variable after a longer substitution on the same line',
      text: withGatewayLine('  listen: "${HOST}:${PORT}"'),
      env: { HOST: 'a-much-longer-host-name.example' },
      at: [3, 20],
      message: 'gateway.listen: environment variable PORT is not set',
    },
    {
      name: 'cross-check error after a substitution that lengthened the line',
      text: editConfig('[{ address: 127.0.0.1:9001, zone: sh-a }]', "[{ address: '${ADDR}', zone: sh-x }]"),
      env: { ADDR: '10.20.30.40:9001' },
      at: [8, 42],
      message: 'discovery.static.orders[0].zone: zone "sh-x" is not in topology',
    },
    {
      name: 'a fallback with content and a status that has none',
      text: `${MINIMAL_CONFIG}    fallback: { status: 204, json: { ok: true } }\n`,
      at: [13, 15],
      message: 'routes[0].fallback: a 204 or 304 response has no content: drop json and body',
    },
    {
      name: 'a timeout of 0, which would fail every request',
      text: `${MINIMAL_CONFIG}    timeout: 0s\n`,
      at: [13, 14],
      message: 'routes[0].timeout: expected a duration of at least 1ms, got "0s"',
    },
    {
      name: 'a duration longer than a timer can wait',
      text: `${MINIMAL_CONFIG}    timeout: 600h\n`,
      at: [13, 14],
      message: 'routes[0].timeout: expected a duration of at most 596h (the longest a timer can wait), got "600h"',
    },
    {
      name: 'a duration without its unit',
      text: `${MINIMAL_CONFIG}    timeout: 5\n`,
      at: [13, 14],
      message: 'routes[0].timeout: expected a duration with a unit, like 250ms, 5s or 1m, got 5',
    },
    {
      name: 'headersTimeout longer than requestTimeout (Node would refuse to start the listener)',
      text: withGatewayLine('  limits: { headersTimeout: 90s }'),
      at: [3, 29],
      message: 'gateway.limits.headersTimeout: headersTimeout (90000 ms) must not be longer than requestTimeout (60000 ms',
    },
    {
      name: 'a CIDR prefix longer than the address',
      text: withGatewayLine('  trustedProxies: [10.1.0.0/16, 10.0.0.0/33]'),
      at: [3, 33],
      message: 'gateway.trustedProxies[1]: expected an IP address or CIDR like 10.0.0.0/8 or fd00::/8, got "10.0.0.0/33"',
    },
    {
      name: 'a trusted proxy that is no IP address',
      text: withGatewayLine('  trustedProxies: [300.1.1.1]'),
      at: [3, 20],
      message: 'gateway.trustedProxies[0]: expected an IP address or CIDR',
    },
    {
      name: 'an address whose host no host name can have',
      text: editConfig('127.0.0.1:9001', '"bad host/x:9001"'),
      at: [8, 25],
      message: 'discovery.static.orders[0].address: expected host:port (e.g. 127.0.0.1:9001), got "bad host/x:9001"',
    },
    {
      name: 'a route naming a service that only exists as an object property',
      text: editConfig('    service: orders', '    service: constructor'),
      at: [12, 14],
      message: 'routes[0].service: unknown service "constructor"',
    },
    {
      name: 'a duplicate key with a colon in it',
      text: editConfig('  static:\n', '  static:\n    "a:b": []\n    "a:b": []\n'),
      at: [9, 5],
      message: 'duplicate key "a:b"',
    },
    {
      name: 'two keys that substitution makes equal',
      text: editConfig(
        '    orders: [{ address: 127.0.0.1:9001, zone: sh-a }]\n',
        '    ${A}: [{ address: 127.0.0.1:9001, zone: sh-a }]\n    ${B}: [{ address: 127.0.0.1:9002, zone: sh-a }]\n',
      ),
      env: { A: 'orders', B: 'orders' },
      at: [9, 5],
      message: 'discovery.static: duplicate key "orders" (${A} and ${B} after substitution)',
    },
    {
      name: 'an unknown YAML tag (its text would otherwise be taken as the value)',
      text: withGatewayLine('  adminToken: !env TOKEN'),
      at: [3, 15],
      message: 'YAML: Unresolved tag: !env',
    },
    {
      name: 'a mistake on the first line of a file that starts with a byte-order mark',
      text: `\uFEFFbogus: 1\n${MINIMAL_CONFIG}`,
      at: [1, 1],
      message: 'bogus: unknown key "bogus"',
    },
  ];

  for (const { name, text, env, at, message } of cases) {
    it(name, async () => {
      const { error, path } = await rejectionOf(text, env);
      assertIssue(error, at[0], at[1], message);
      assert.equal(error.issues[0]?.file, path);
    });
  }
});

describe('loadConfigFile: placeholders in keys', () => {
  it('reports an unset variable in a key once, under the key as written', async () => {
    const { error } = await rejectionOf(editConfig('{ prefix: /orders }', '{ prefix: /orders, headers: { ${H}: v } }'));
    assert.deepEqual(
      error.issues.map((issue) => [issue.line, issue.col, issue.message]),
      [[11, 42, 'routes[0].match.headers["${H}"]: environment variable H is not set (write ${H:-default} to allow that)']],
    );
  });
});

describe('loadConfigFile: reporting', () => {
  it('reports every schema problem at once, in file order', async () => {
    const text = [
      ['127.0.0.1:9001', 'localhost'],
      ['prefix: /orders', 'prefx: /orders'],
      ['  zone: sh-a\n', '  zone: sh-a\n  drainTimeout: soon\n'],
    ].reduce((config, [search, replacement]) => editConfig(search!, replacement!, config), MINIMAL_CONFIG);
    const { error } = await rejectionOf(text);
    assert.deepEqual(
      error.issues.map((issue) => [issue.line, issue.message.split(':')[0]]),
      [
        [3, 'gateway.drainTimeout'],
        [9, 'discovery.static.orders[0].address'],
        [12, 'routes[0].match'],
        [12, 'routes[0].match.prefx'],
      ],
    );
  });

  it('runs cross-checks only once the schema passes', async () => {
    const text = editConfig('    service: orders', '    service: payments', withGatewayLine('  drainTimeout: soon'));
    const { error } = await rejectionOf(text);
    assert.equal(error.issues.length, 1, error.format());
    assertIssue(error, 3, 17, 'gateway.drainTimeout');
  });

  it('formats one file:line:col: message per line', async () => {
    const { error, path } = await rejectionOf(editConfig('prefix: /orders', 'prefx: /orders'));
    assert.equal(
      error.format(),
      [
        `${path}:11:12: routes[0].match: match needs exactly one of prefix or path`,
        `${path}:11:14: routes[0].match.prefx: unknown key "prefx" (did you mean "prefix"?)`,
      ].join('\n'),
    );
    assert.match(error.message, /invalid config \(2 problems\)/);
  });

  it('names an unreadable file at 1:1', async () => {
    const missing = join(temp.dir, 'does-not-exist.yaml');
    await assert.rejects(loadConfigFile(missing, {}), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.deepEqual(error.issues, [{ file: missing, line: 1, col: 1, message: 'cannot read config file: no such file' }]);
      return true;
    });
  });

  it('rejects an empty file with what it should contain', async () => {
    const { error } = await rejectionOf('');
    assertIssue(error, 1, 1, 'expected a mapping with gateway, topology and routes, got an empty file');
  });
});
