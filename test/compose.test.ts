// docker-compose.yml, checked for what can be checked without Docker: the services and images it runs, the two
// Consul datacenters joined over the WAN, Redis, the instances registered in their own datacenter, the gateway's
// ports, health checks and environment, and that every config it mounts validates with that environment.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { loadConfigFile } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import { parseHostPort } from '../src/config/schema.ts';

const REPO = join(import.meta.dirname, '..');

interface Service {
  image?: string;
  build?: string;
  command?: string[];
  ports?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  depends_on?: Record<string, { condition: string }>;
  healthcheck?: { test: string[] };
  stop_grace_period?: string;
}

/** A command's `-flag=value` or `--flag value`. */
function flag(command: readonly string[], name: string): string | undefined {
  const inline = command.find((part) => part.startsWith(`${name}=`));
  if (inline !== undefined) return inline.slice(name.length + 1);
  const at = command.indexOf(name);
  return at === -1 ? undefined : command[at + 1];
}

/** Compose's `${VAR:?message}` and `${VAR:-default}` in the environment it hands a container, with `given` set. */
function composeEnvironment(environment: Record<string, string>, given: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(environment).map(([name, value]) => [
      name,
      value.replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_, variable: string, kind?: string, rest?: string) => {
        const set = given[variable];
        if (set !== undefined) return set;
        if (kind === '?') throw new Error(`compose refuses to start: ${rest}`);
        return kind === '-' ? (rest ?? '') : '';
      }),
    ]),
  );
}

/** The file a container path of a service's volumes maps to in the repo. */
function mounted(service: Service, path: string): string {
  for (const volume of service.volumes ?? []) {
    const [source = '', target = ''] = volume.split(':');
    if (path.startsWith(`${target}/`)) return join(REPO, source, path.slice(target.length + 1));
  }
  assert.fail(`${path} is not mounted`);
}

describe('docker-compose.yml', () => {
  let services: Record<string, Service>;
  let gateway: Config;
  const TOKEN = 'a-token-from-the-environment';

  before(async () => {
    const compose = parseYaml(await readFile(join(REPO, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
    services = compose.services;
    const zonegate = services.zonegate!;
    const env = composeEnvironment(zonegate.environment ?? {}, { ZONEGATE_ADMIN_TOKEN: TOKEN });
    gateway = await loadConfigFile(mounted(zonegate, flag(zonegate.command!, '--config')!), env);
  });

  it('runs two Consul servers, one per datacenter, dc2 joined to dc1 over the WAN, and Redis', () => {
    const consuls = Object.entries(services).filter(([, service]) => service.image?.startsWith('hashicorp/consul:'));
    const datacenters = consuls.map(([, service]) => flag(service.command!, '-datacenter'));
    assert.deepEqual(datacenters, ['dc1', 'dc2']);
    for (const [, service] of consuls) {
      assert.match(service.image!, /^hashicorp\/consul:\d+\.\d+$/, 'a pinned Consul release');
      assert.ok(service.command!.includes('-server') && flag(service.command!, '-bootstrap-expect') === '1', 'a server that elects itself');
      assert.equal(flag(service.command!, '-client'), '0.0.0.0', 'its HTTP API reachable from the other containers');
    }
    assert.equal(flag(services['consul-dc2']!.command!, '-retry-join-wan'), 'consul-dc1');
    assert.match(services.redis!.image!, /^redis:\d+(\.\d+)?-alpine$/);
  });

  it('gives every service a health check, and starts each one after what it needs is healthy', () => {
    for (const [name, service] of Object.entries(services)) {
      assert.ok(service.healthcheck?.test.length, `${name} has a health check`);
      for (const [needed, { condition }] of Object.entries(service.depends_on ?? {})) {
        assert.ok(services[needed], `${name} depends on ${needed}, a service`);
        assert.equal(condition, 'service_healthy', `${name} waits for ${needed} to be healthy`);
      }
    }
    assert.deepEqual(Object.keys(services.zonegate!.depends_on ?? {}).sort(), ['consul-dc1', 'consul-dc2', 'instances-dc1', 'instances-dc2', 'redis']);
    assert.deepEqual(services.zonegate!.healthcheck!.test.slice(1, 3), ['/app/bin/zonegate.js', 'health'], 'zonegate health probes /healthz');
    assert.equal(flag(services.zonegate!.healthcheck!.test, '--config'), flag(services.zonegate!.command!, '--config'));
  });

  it('registers the demo instances of each region in the Consul of its datacenter, where checks reach them', async () => {
    const regionOf = (zone: string): string | undefined =>
      Object.entries(gateway.topology).find(([, cities]) => Object.values(cities).some((zones) => zones.includes(zone)))?.[0];
    const regionsByDatacenter: Record<string, Set<string | undefined>> = {};
    for (const name of ['instances-dc1', 'instances-dc2']) {
      const service = services[name]!;
      assert.equal(service.image, services.zonegate!.image, 'the zonegate image');
      assert.deepEqual(service.command!.slice(0, 2), ['demo', '--upstreams-only']);
      const consul = new URL(flag(service.command!, '--consul')!);
      const datacenter = flag(services[consul.hostname]!.command!, '-datacenter')!;
      const instances = await loadConfigFile(mounted(service, flag(service.command!, '--config')!));
      const all = Object.values(instances.discovery.static).flat();
      assert.ok(all.length > 0);
      for (const instance of all) assert.equal(instance.address.host, name, 'listens on, and registers, its own service name');
      regionsByDatacenter[datacenter] = new Set(all.map((instance) => regionOf(instance.zone)));
    }
    assert.deepEqual(regionsByDatacenter, { dc1: new Set(['cn-east']), dc2: new Set(['cn-north']) }, 'one region per datacenter');
  });

  it('runs the gateway on Consul in both datacenters with rate limits in Redis, from a config that validates', () => {
    const zonegate = services.zonegate!;
    assert.deepEqual(zonegate.command!.slice(0, 1), ['run']);
    assert.equal(zonegate.build, '.');
    assert.equal(zonegate.image, 'zonegate:local');
    const consul = gateway.discovery.consul!;
    assert.deepEqual(consul.datacenters, ['dc1', 'dc2']);
    assert.ok(services[new URL(consul.address).hostname], 'Consul is a service of the file');
    assert.deepEqual(gateway.discovery.static, {}, 'every service comes from Consul');
    assert.ok(services[new URL(gateway.redis!.url).hostname]?.image?.startsWith('redis:'), 'Redis is the redis service');
    assert.ok(gateway.routes.some((route) => route.rateLimit !== undefined), 'a route is rate limited');
  });

  it('publishes the proxy, and the admin listener on the host loopback only, behind a token from the environment', async () => {
    const zonegate = services.zonegate!;
    const published = (zonegate.ports ?? []).map((mapping) => {
      const parts = mapping.split(':');
      return { host: parts.length === 3 ? parts[0] : '', hostPort: parts.at(-2), containerPort: Number(parts.at(-1)) };
    });
    assert.ok(published.some((port) => port.containerPort === gateway.gateway.listen.port), `the proxy port ${gateway.gateway.listen.port}`);
    const admin = published.find((port) => port.containerPort === gateway.gateway.admin.port);
    assert.equal(admin?.host, '127.0.0.1', 'the admin listener is published on the host loopback only');
    assert.equal(gateway.gateway.adminToken, TOKEN, 'the admin token comes from the environment');
    assert.match(zonegate.environment!.ZONEGATE_ADMIN_TOKEN!, /^\$\{ZONEGATE_ADMIN_TOKEN:\?/, 'compose refuses to start without a token: no default');
    assert.throws(() => composeEnvironment(zonegate.environment!, {}), /compose refuses to start/);
    for (const [, service] of Object.entries(services)) {
      for (const mapping of service.ports ?? []) {
        const parts = mapping.split(':');
        if (Number(parts.at(-1)) !== gateway.gateway.listen.port) assert.equal(parts[0], '127.0.0.1', `${mapping}: only the proxy is published beyond this host`);
      }
    }
    assert.deepEqual(parseHostPort(composeEnvironment(zonegate.environment!, { ZONEGATE_ADMIN_TOKEN: TOKEN }).ZONEGATE_ADMIN!), { host: '0.0.0.0', port: gateway.gateway.admin.port });
  });

  it('gives the gateway time to drain on docker compose stop', () => {
    const grace = Number(/^(\d+)s$/.exec(services.zonegate!.stop_grace_period ?? '')?.[1]);
    assert.ok(grace * 1000 > gateway.gateway.drainTimeout, `stop_grace_period ${grace}s > drainTimeout ${gateway.gateway.drainTimeout} ms`);
  });
});
