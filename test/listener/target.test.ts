// Routes match the path the instance will see: percent-encoded unreserved characters decoded, `;parameters` ignored
// for matching, double-encoded characters refused. Each bypass an upstream's own decoding would allow is tried
// against routes {prefix: /api/admin, fallback 403} then {prefix: /api}; `explain` agrees with the request path.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { loadStatic } from '../../src/discovery/static.ts';
import { CallerLocality } from '../../src/listener/locality.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { explain } from '../../src/routing/explain.ts';
import { createUpstreams } from '../../src/routing/pick.ts';
import { RouteTable } from '../../src/routing/route-table.ts';
import { Topology } from '../../src/topology.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { assertGatewayError, configYaml, json, mirror, send, type Mirrored, type RouteInput } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const ROUTES: RouteInput[] = [
  // no instance of `admin`: every request the route matches gets its fallback
  { name: 'admin', match: { prefix: '/api/admin' }, service: 'admin', fallback: { status: 403, json: { message: 'forbidden' } } },
  { name: 'api', match: { prefix: '/api' }, service: 'api' },
  { name: 'docs', match: { prefix: '/Docs', caseInsensitive: true }, service: 'api' },
  { name: 'files', match: { prefix: '/files' }, service: 'api', stripPrefix: true },
];

describe('route matching on the normalised path', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  let yaml: string;
  before(async () => {
    upstream = await startUpstream('api', mirror);
    yaml = configYaml({ services: { admin: [], api: [upstream.address] }, routes: ROUTES });
    gateway = await startGateway(yaml);
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  const bypasses: [what: string, path: string][] = [
    ['an encoded unreserved letter', '/api/%61dmin'],
    ['encoded letters in upper and lower case', '/api/%61%64%6d%69%6E/users'],
    ['a path parameter on the segment', '/api/admin;jsessionid=1'],
    ['a path parameter on an earlier segment', '/api;v=2/admin/users'],
    ['a dot segment with a parameter', '/api/public/..;/admin'],
    ['an empty segment with a parameter', '/api/;x=1/admin'],
    ['an encoded dot segment', '/api/public/%2e%2e/admin'],
  ];
  for (const [what, path] of bypasses) {
    it(`matches ${path} (${what}) as /api/admin: 403, nothing reaches the instance`, async () => {
      const before = upstream.requests.length;
      const result = await send(gateway.url, { path });
      assert.equal(result.status, 403, result.body.toString());
      assert.equal(upstream.requests.length, before);
      const line = await gateway.log.waitFor((l) => l.msg === 'access' && l.reqId === result.headers['x-request-id']);
      assert.equal(line.route, 'admin');
    });
  }

  for (const path of ['/api/%2561dmin', '/api/%252e%252e/admin', '/api/a%252Fb']) {
    it(`refuses the double-encoded ${path} with 400 bad_request, nothing reaches the instance`, async () => {
      const before = upstream.requests.length;
      const result = await send(gateway.url, { path });
      assert.match(assertGatewayError(result, 400, 'bad_request').message, /double-encoded/);
      assert.equal(upstream.requests.length, before);
    });
  }

  const forwarded: [path: string, url: string][] = [
    ['/api/%61bc/%7Euser', '/api/abc/~user'],
    ['/api/orders;v=1/7?x=%61', '/api/orders;v=1/7?x=%61'],
    ['/api/a%3fb%2a', '/api/a%3Fb%2A'],
    ['/api/100%25', '/api/100%25'],
    ['/files;v=1/report.pdf', '/report.pdf'],
  ];
  for (const [path, url] of forwarded) {
    it(`forwards ${path} as ${url}: the normalised path, parameters and query kept`, async () => {
      const result = await send(gateway.url, { path });
      assert.equal(result.status, 200, result.body.toString());
      assert.equal(json<Mirrored>(result).url, url);
    });
  }

  it('keeps matching case-sensitive unless the route opts in', async () => {
    assert.equal((await send(gateway.url, { path: '/API/admin' })).status, 404);
    assert.equal((await send(gateway.url, { path: '/Api/orders' })).status, 404);
    for (const path of ['/docs/intro', '/DOCS/intro', '/Docs']) {
      const result = await send(gateway.url, { path });
      assert.equal(result.status, 200, path);
      assert.equal(json<Mirrored>(result).url, path, 'the path keeps its case upstream');
    }
    assert.equal((await send(gateway.url, { path: '/docsx' })).status, 404, 'still segment-aware');
  });

  it('explain routes every path as the request path does', async () => {
    const config = loadConfigText(yaml, 'routes.yaml', {});
    const topology = new Topology(config.topology);
    const upstreams = createUpstreams(topology);
    loadStatic(upstreams.registry, config.discovery);
    const callers = new CallerLocality(topology, config.gateway, createLogger({ level: 'silent' }));
    const context = { routes: new RouteTable(config.routes), callers, upstreams };
    for (const [, path] of bypasses) {
      const explained = explain(context, { path });
      assert.equal(explained.route, 'admin', path);
      assert.match(explained.outcome, /^403 fallback/);
    }
    const doubled = explain(context, { path: '/api/%2561dmin' });
    assert.equal(doubled.route, null);
    assert.match(doubled.outcome, /^400 bad_request \(.*double-encoded/);
    assert.equal(explain(context, { path: '/DOCS/x' }).route, 'docs');
    assert.equal(explain(context, { path: '/api/%61bc' }).path, '/api/abc');
  });
});
