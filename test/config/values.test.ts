// Values the schema reads beyond their YAML type: durations, rates, listen addresses, route hosts, Redis and
// Consul addresses. Each refusal names the file position and what to write instead.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { MINIMAL_CONFIG, assertIssue, configErrorOf, editConfig, withGatewayLine } from './fixtures/config-files.ts';

const load = (text: string) => loadConfigText(text, 'routes.yaml', {});

describe('durations are whole milliseconds', () => {
  it('reads decimal fractions exactly, where floating point would give 65400.00000000001 ms', () => {
    const config = load(withGatewayLine('  limits: { headersTimeout: 1.001s, requestTimeout: 1.09m, keepAliveTimeout: 0.25h }'));
    const { headersTimeout, requestTimeout, keepAliveTimeout } = config.gateway.limits;
    assert.deepEqual([headersTimeout, requestTimeout, keepAliveTimeout], [1001, 65_400, 900_000]);
    // Node refuses a server whose timeouts are not whole milliseconds
    createServer({ headersTimeout, requestTimeout, keepAliveTimeout }).close();
  });

  it('refuses a fraction of a millisecond, naming the nearest whole values', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    timeout: 1.5ms\n`);
    assertIssue(error, 13, 14, 'routes[0].timeout: expected a whole number of milliseconds, got "1.5ms" (write 1ms or 2ms)');
  });

  it('refuses a timeout below 1ms written as a fraction, suggesting 1ms', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    timeout: 0.0004s\n`);
    assertIssue(error, 13, 14, 'routes[0].timeout: expected a whole number of milliseconds, got "0.0004s" (write 1ms)');
  });

  it('refuses a sub-millisecond backoff too, and still takes 0 where 0 means "at once"', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    retries: { backoff: 2.5ms }\n`);
    assertIssue(error, 13, 25, 'routes[0].retries.backoff: expected a whole number of milliseconds, got "2.5ms" (write 2ms or 3ms)');
    assert.equal(load(`${MINIMAL_CONFIG}    retries: { backoff: 0.0s }\n`).routes[0]?.retries.backoff, 0);
  });
});

describe('rates', () => {
  it('refuses a rate too large to be a finite number', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}    rateLimit: { rate: ${'9'.repeat(400)}/s }\n`);
    assertIssue(error, 13, 24, 'routes[0].rateLimit.rate: expected a rate like 100/s or 6000/m, got "999');
  });
});

describe('listen addresses', () => {
  it('suggests ":8080" for a bare port', () => {
    const error = configErrorOf(withGatewayLine('  listen: 8080'));
    assertIssue(error, 3, 11, 'gateway.listen: expected host:port, got 8080 (write ":8080" or "0.0.0.0:8080" for every interface');
  });

  it('suggests the same for a bare port that came quoted or from the environment', () => {
    const quoted = configErrorOf(withGatewayLine('  admin: "9901"'));
    assertIssue(quoted, 3, 10, 'gateway.admin: expected host:port (e.g. 0.0.0.0:8080), got "9901" (write ":9901" or "0.0.0.0:9901"');
    const substituted = configErrorOf(withGatewayLine('  admin: ${ADMIN}'), { ADMIN: '9901' });
    assertIssue(substituted, 3, 10, 'got 9901 (write ":9901" or "0.0.0.0:9901" for every interface, "127.0.0.1:9901" for this host only)');
  });
});

describe('match.host', () => {
  const withHost = (host: string) => editConfig('{ prefix: /orders }', `{ prefix: /orders, host: ${JSON.stringify(host)} }`);

  it('refuses a port: requests are matched on the host without it', () => {
    const error = configErrorOf(withHost('api.example.com:8080'));
    assertIssue(error, 11, 37, 'routes[0].match.host: expected a host name like api.example.com or a wildcard like *.example.com, got "api.example.com:8080" (requests are matched on the host without its port, so this never matches: write "api.example.com")');
  });

  it('refuses a wildcard other than a leading "*." and an IPv6 address without brackets', () => {
    assertIssue(configErrorOf(withHost('api.*.com')), 11, 37, 'a wildcard is only allowed as the first label');
    assertIssue(configErrorOf(withHost('*')), 11, 37, 'leave host out to match every host');
    assertIssue(configErrorOf(withHost('::1')), 11, 37, 'write an IPv6 address in brackets: "[::1]"');
  });

  it('takes host names, wildcards, IP literals and bracketed IPv6, as the route table compares them', () => {
    for (const host of ['api.example.com', 'API.Example.COM', '*.example.com', '10.0.0.1', '[::1]', 'localhost']) {
      assert.equal(load(withHost(host)).routes[0]?.match.host, host);
    }
  });
});

describe('Consul and Redis addresses', () => {
  const withConsul = (address: string) => editConfig('  static:\n', `  consul: { address: ${JSON.stringify(address)} }\n  static:\n`);

  it('refuses a Consul address with a scheme other than http or https', () => {
    assertIssue(configErrorOf(withConsul('unix:///run/consul.sock')), 7, 22, 'discovery.consul.address: expected http://host:port, https://host:port or host:port, got "unix:///run/consul.sock" (Consul is reached over HTTP: "unix:" is not supported)');
    assertIssue(configErrorOf(withConsul('grpc://consul:8502')), 7, 22, '"grpc:" is not supported');
    assertIssue(configErrorOf(withConsul('https:/consul:8500')), 7, 22, 'got "https:/consul:8500" (the scheme needs "//")');
  });

  it('takes http(s) URLs and host:port', () => {
    for (const address of ['http://127.0.0.1:8500', 'https://consul.internal', 'consul:8500', '[::1]:8500']) {
      assert.equal(load(withConsul(address)).discovery.consul?.address, address);
    }
  });

  it('refuses a Redis URL with a scheme ioredis would read as a host name', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}redis:\n  url: http://cache:6379\n`);
    assertIssue(error, 14, 8, 'redis.url: expected redis://[user:password@]host:port[/db], rediss://…, host:port or a Unix socket path, got "http://cache:6379" ("http:" is not a Redis scheme)');
  });

  it('refuses an upper-case rediss:// in a cluster list, which ioredis would not encrypt', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}redis:\n  cluster: [rediss://a:6379, Rediss://b:6379]\n`);
    assertIssue(error, 14, 30, 'redis.cluster[1]: expected redis://');
  });
});

describe('secrets in messages', () => {
  it('masks the password of a Redis URL', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}redis:\n  url: \${REDIS_URL}\n`, { REDIS_URL: 'redis://admin:pw@cache:63 79' });
    assertIssue(error, 14, 8, 'redis.url: expected redis://');
    assertIssue(error, 14, 8, 'got "redis://admin:***@cache:63 79"');
    assert.doesNotMatch(error.format(), /:pw@/);
  });

  it('masks the password of a Consul address', () => {
    const text = editConfig('  static:\n', '  consul: { address: "http://ops:hunter2@consul:8500" }\n  static:\n');
    const error = configErrorOf(text);
    assertIssue(error, 7, 22, 'got "http://ops:***@consul:8500" (no user or password here: set discovery.consul.token)');
    assert.doesNotMatch(error.format(), /hunter2/);
  });

  it('never echoes a Consul token', () => {
    const error = configErrorOf(editConfig('  static:\n', '  consul: { token: 8e21 }\n  static:\n'));
    assertIssue(error, 7, 20, 'discovery.consul.token: expected a string, got a number (quote it to keep it as text)');
    assert.doesNotMatch(error.format(), /8e\+?21/);
  });
});
