// `explain`: which route, tier and instance would serve a request, and why. Called directly with a
// context built the way `zonegate explain` builds it, compared with what a live gateway does, and run
// once through the CLI.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { loadConfigText } from '../../src/config/load.ts';
import { loadStatic } from '../../src/discovery/static.ts';
import { CallerLocality } from '../../src/listener/locality.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { explain, type ExplainContext } from '../../src/routing/explain.ts';
import { createUpstreams } from '../../src/routing/pick.ts';
import { RouteTable } from '../../src/routing/route-table.ts';
import { Topology } from '../../src/topology.ts';
import { layoutIds, startZonedGateway, zonedConfigYaml, type RouteInput } from './support.ts';

/** No instance in hangzhou: a hz-a caller has only remote tiers. */
const SERVICES = { app: { 'sh-a': 2, 'sh-b': 2, 'bj-a': 2 } };

const ROUTES: RouteInput[] = [
  { name: 'orders', match: { prefix: '/api/order' }, service: 'app', sticky: { header: 'X-User-ID' } },
  { name: 'carts', match: { prefix: '/api/cart' }, service: 'app', fallback: { status: 503, json: { message: 'carts are read-only' } } },
];

/** The routes.yaml of these tests; explain never connects, so the addresses need no listener. */
function explainYaml(unhealthy: readonly string[] = []): string {
  const ids = layoutIds('app', SERVICES.app);
  const addresses = new Map(ids.map((id, i) => [id, `127.0.0.1:${9101 + i}`]));
  return zonedConfigYaml({ services: SERVICES, addresses, routes: ROUTES, unhealthy });
}

/** The context `zonegate explain` builds: the config's static registry, no gateway running. */
function explainContext(yaml: string): ExplainContext {
  const config = loadConfigText(yaml, 'routes.yaml', {});
  const topology = new Topology(config.topology);
  const upstreams = createUpstreams(topology);
  loadStatic(upstreams.registry, config.discovery);
  const callers = new CallerLocality(topology, config.gateway, createLogger({ level: 'silent' }));
  return { routes: new RouteTable(config.routes), callers, upstreams };
}

describe('explain()', () => {
  it('refuses a write from a zone whose city has no instances: only remote tiers are left', () => {
    const result = explain(explainContext(explainYaml()), { path: '/api/order/7', method: 'post', region: 'hz-a' });
    assert.equal(result.route, 'orders');
    assert.equal(result.service, 'app');
    assert.equal(result.method, 'POST');
    assert.deepEqual(
      { kind: result.caller.kind, name: result.caller.name, city: result.caller.city, region: result.caller.region },
      { kind: 'zone', name: 'hz-a', city: 'hangzhou', region: 'cn-east' },
    );
    assert.equal(result.caller.fromHeader, true);
    assert.deepEqual(
      result.tiers.map(({ tier, scope, healthy, registered, verdict }) => ({ tier, scope, healthy, registered, verdict })),
      [{ tier: 'remote', scope: 'cn-east outside hangzhou', healthy: 4, registered: 4, verdict: 'remote-write' }],
    );
    assert.equal(result.instance, null);
    assert.equal(result.outcome, '503 remote_write_refused');
  });

  it('forwards a read from that zone to its own region before other regions', () => {
    const result = explain(explainContext(explainYaml()), { path: '/api/order/7', region: 'hz-a' });
    assert.equal(result.tiers.length, 1);
    assert.equal(result.tiers[0]!.verdict, 'eligible');
    assert.ok(result.instance !== null);
    assert.equal(result.instance.tier, 'remote');
    assert.ok(['sh-a', 'sh-b'].includes(result.instance.zone), `chose ${result.instance.id}`);
    assert.equal(result.outcome, `forwarded to ${result.instance.id} (remote tier)`);
  });

  it('reports each skipped tier with its counts and reason', () => {
    const yaml = explainYaml(['app/sh-b-1', 'app/sh-b-2', 'app/sh-a-1']);
    const write = explain(explainContext(yaml), { path: '/api/order/7', method: 'PUT', region: 'hz-a' });
    assert.deepEqual(
      write.tiers.map(({ scope, healthy, registered, verdict }) => [scope, `${healthy}/${registered}`, verdict]),
      [
        ['cn-east outside hangzhou', '1/4', 'below-threshold'],
        ['outside cn-east', '2/2', 'remote-write'],
      ],
    );
    const read = explain(explainContext(yaml), { path: '/api/order/7', region: 'sh-b' });
    assert.deepEqual(
      read.tiers.map(({ tier, healthy, registered, verdict }) => [tier, `${healthy}/${registered}`, verdict]),
      [
        ['zone', '0/2', 'no-healthy-instance'],
        ['city', '1/2', 'eligible'],
      ],
    );
    assert.equal(read.instance?.id, 'app/sh-a-2');
  });

  it('takes the gateway zone when no region is given, and reports a path no route matches', () => {
    const context = explainContext(explainYaml());
    const home = explain(context, { path: '/api/order/7' });
    assert.equal(home.caller.name, 'sh-a');
    assert.equal(home.caller.fromHeader, false);
    assert.equal(home.instance?.zone, 'sh-a');
    const unmatched = explain(context, { path: '/api/orders' });
    assert.equal(unmatched.route, null);
    assert.equal(unmatched.outcome, '404 route_not_found');
  });

  it('routes a path with a query string or dot segments as the gateway would', () => {
    const context = explainContext(explainYaml());
    const plain = explain(context, { path: '/api/order/7' });
    for (const path of ['/api/order/7?expand=items', '/api/x/../order/7']) {
      const result = explain(context, { path });
      assert.equal(result.route, plain.route, path);
      assert.equal(result.path, '/api/order/7');
    }
  });
});

describe('explain() against a live gateway', () => {
  it('names the instance the gateway serves a sticky key from, and refuses a remote write even with a fallback', async (t) => {
    const zoned = await startZonedGateway({ services: SERVICES, routes: ROUTES });
    t.after(() => zoned.close());
    const context = explainContext(zoned.yaml);
    for (let i = 0; i < 40; i++) {
      const key = `shopper-${i}`;
      const region = i % 2 === 0 ? 'sh-b' : 'hz-a';
      const explained = explain(context, { path: '/api/order/7', region, key });
      assert.equal(explained.balancing, 'sticky');
      const reply = await zoned.client.request({ path: '/api/order/7', headers: { 'x-user-id': key, 'x-region-id': region } });
      assert.equal(reply.upstream, explained.instance?.id, `key ${key} from ${region}`);
      assert.equal(reply.tier, explained.instance?.tier);
    }

    const explained = explain(context, { path: '/api/cart', method: 'POST', region: 'hz-a' });
    const reply = await zoned.client.request({ path: '/api/cart', method: 'POST', headers: { 'x-region-id': 'hz-a' }, body: '{}' });
    assert.equal(reply.headers['x-zonegate-fallback'], undefined, 'the fallback is for "no tier can serve"');
    assert.equal(JSON.parse(reply.text).error, 'remote_write_refused');
    assert.equal(explained.outcome, `${reply.status} remote_write_refused`);
  });
});

describe('zonegate explain', () => {
  it('prints the route, the caller, every tier tried with its counts, and the outcome', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-explain-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const config = join(dir, 'routes.yaml');
    await writeFile(config, explainYaml(['app/sh-b-1', 'app/sh-b-2', 'app/sh-a-1']));
    const run = async (method: string, region: string): Promise<string[]> => {
      const args = ['src/cli.ts', 'explain', '--config', config, '--path', '/api/order/7', '--method', method, '--region', region];
      const { stdout } = await promisify(execFile)(process.execPath, args, { cwd: join(import.meta.dirname, '../..') });
      return stdout.trimEnd().split('\n').map((line) => line.replace(/\s+/g, ' ').trim());
    };
    const [write, read] = await Promise.all([run('POST', 'hz-a'), run('GET', 'sh-b')]);

    assert.deepEqual(write, [
      'request POST /api/order/7',
      'caller zone hz-a (hz-a / hangzhou / cn-east) from X-Region-ID',
      'route orders',
      'service app',
      'balancing least request (power of two choices)',
      'tiers',
      '✗ remote cn-east outside hangzhou 1/4 healthy healthy share below the 0.3 threshold',
      '✗ remote outside cn-east 2/2 healthy remote tier serves GET/HEAD/OPTIONS only (locality.remote: read-only)',
      'outcome 503 remote_write_refused',
    ]);
    assert.deepEqual(read.slice(1, 3), ['caller zone sh-b (sh-b / shanghai / cn-east) from X-Region-ID', 'route orders']);
    assert.deepEqual(read.slice(5), [
      'tiers',
      '✗ zone sh-b 0/2 healthy no healthy instance',
      '✓ city shanghai 1/2 healthy healthy share at or above the 0.3 threshold',
      'instance app/sh-a-2 at 127.0.0.1:9102, zone sh-a',
      'outcome forwarded to app/sh-a-2 (city tier)',
    ]);
  });
});
