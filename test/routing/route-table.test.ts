// RouteTable: which route a request matches (path, segment-aware prefix, host, methods, headers; first
// match wins) and the path it sends upstream (stripPrefix). Routes are parsed by the real config schema.
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders } from 'node:http';
import { describe, it } from 'node:test';
import { configSchema, type ConfigInput } from '../../src/config/schema.ts';
import { RouteTable, type RouteRequest } from '../../src/routing/route-table.ts';

type RouteSpec = Pick<ConfigInput['routes'][number], 'name' | 'match' | 'stripPrefix'>;

function parsedTable(routes: ConfigInput['routes']): RouteTable {
  const config = configSchema.parse({ gateway: { zone: 'sh-a' }, topology: { 'cn-east': { shanghai: ['sh-a'] } }, routes });
  return new RouteTable(config.routes);
}

/** Each route sends to its own service, `<name>-service`. */
function routeTable(routes: readonly RouteSpec[]): RouteTable {
  return parsedTable(routes.map((route) => ({ service: `${route.name}-service`, ...route })));
}

interface Case {
  readonly path: string;
  readonly host?: string;
  readonly method?: string;
  readonly headers?: IncomingHttpHeaders;
  /** the route name expected to match, or null for none */
  readonly expected: string | null;
}

function describeCase(c: Case): string {
  const extras = [c.method, c.host && `host ${c.host}`, c.headers && JSON.stringify(c.headers)].filter(Boolean).join(', ');
  return `${c.path}${extras ? ` (${extras})` : ''} → ${c.expected ?? 'no route'}`;
}

/** One `it` per case, each matching against the same table. */
function matchCases(routes: readonly RouteSpec[], cases: readonly Case[]): void {
  const table = routeTable(routes);
  for (const c of cases) {
    it(describeCase(c), () => {
      const request: RouteRequest = { method: c.method ?? 'GET', host: c.host ?? 'gateway.local', path: c.path, headers: c.headers ?? {} };
      assert.equal(table.match(request)?.name ?? null, c.expected);
    });
  }
}

describe('RouteTable.match', () => {
  describe('exact path', () => {
    matchCases(
      [{ name: 'health', match: { path: '/healthz' } }],
      [
        { path: '/healthz', expected: 'health' },
        { path: '/healthz/', expected: null },
        { path: '/healthz/deep', expected: null },
        { path: '/healthzz', expected: null },
        { path: '/', expected: null },
      ],
    );
  });

  describe('segment-aware prefix', () => {
    matchCases(
      [{ name: 'orders', match: { prefix: '/api/order' } }],
      [
        { path: '/api/order', expected: 'orders' },
        { path: '/api/order/', expected: 'orders' },
        { path: '/api/order/7', expected: 'orders' },
        { path: '/api/order/7/items', expected: 'orders' },
        { path: '/api/orders', expected: null },
        { path: '/api/order7', expected: null },
        { path: '/api', expected: null },
        { path: '/v2/api/order', expected: null },
      ],
    );
  });

  describe('prefix with a trailing slash', () => {
    matchCases(
      [{ name: 'static', match: { prefix: '/static/' } }],
      [
        { path: '/static/app.js', expected: 'static' },
        { path: '/static/', expected: 'static' },
        { path: '/static', expected: 'static' },
        { path: '/statics/app.js', expected: null },
      ],
    );
  });

  describe('the root prefix', () => {
    matchCases(
      [{ name: 'everything', match: { prefix: '/' } }],
      [
        { path: '/', expected: 'everything' },
        { path: '/any/thing', expected: 'everything' },
      ],
    );
  });

  describe('host', () => {
    matchCases(
      [
        { name: 'api-host', match: { prefix: '/', host: 'API.Example.com' } },
        { name: 'tenant-hosts', match: { prefix: '/', host: '*.example.com' } },
      ],
      [
        { path: '/x', host: 'api.example.com', expected: 'api-host' },
        { path: '/x', host: 'shop.example.com', expected: 'tenant-hosts' },
        { path: '/x', host: 'eu.shop.example.com', expected: 'tenant-hosts' },
        { path: '/x', host: 'example.com', expected: null },
        { path: '/x', host: 'badexample.com', expected: null },
        { path: '/x', host: 'api.example.org', expected: null },
      ],
    );
  });

  describe('methods', () => {
    matchCases(
      [
        { name: 'reads', match: { prefix: '/catalog', methods: ['GET', 'HEAD'] } },
        { name: 'writes', match: { prefix: '/catalog', methods: ['POST'] } },
      ],
      [
        { path: '/catalog/1', method: 'GET', expected: 'reads' },
        { path: '/catalog/1', method: 'HEAD', expected: 'reads' },
        { path: '/catalog/1', method: 'POST', expected: 'writes' },
        { path: '/catalog/1', method: 'DELETE', expected: null },
      ],
    );
  });

  describe('headers', () => {
    matchCases(
      [
        { name: 'canary', match: { prefix: '/', headers: { 'X-Canary': 'yes' } } },
        { name: 'stable', match: { prefix: '/' } },
      ],
      [
        { path: '/orders', headers: { 'x-canary': 'yes' }, expected: 'canary' },
        { path: '/orders', headers: { 'x-canary': 'no' }, expected: 'stable' },
        { path: '/orders', headers: { 'x-canary': 'YES' }, expected: 'stable' },
        { path: '/orders', expected: 'stable' },
      ],
    );
  });

  describe('path parameters are ignored for matching', () => {
    matchCases(
      [
        { name: 'admin', match: { prefix: '/api/admin' } },
        { name: 'exact', match: { path: '/status' } },
        { name: 'api', match: { prefix: '/api' } },
      ],
      [
        { path: '/api/admin;jsessionid=1', expected: 'admin' },
        { path: '/api;v=1/admin', expected: 'admin' },
        { path: '/api/x/..;/admin', expected: 'admin' },
        { path: '/api/;/admin', expected: 'admin' },
        { path: '/status;x', expected: 'exact' },
        { path: '/api/administrators;x', expected: 'api' },
      ],
    );
  });

  describe('case-insensitive opt-in', () => {
    matchCases(
      [
        { name: 'docs', match: { prefix: '/Docs', caseInsensitive: true } },
        { name: 'faq', match: { path: '/FAQ', caseInsensitive: true } },
        { name: 'api', match: { prefix: '/api' } },
      ],
      [
        { path: '/docs/a', expected: 'docs' },
        { path: '/DOCS', expected: 'docs' },
        { path: '/docsx', expected: null },
        { path: '/faq', expected: 'faq' },
        { path: '/API/x', expected: null },
      ],
    );
  });

  describe('first match wins, in file order', () => {
    matchCases(
      [
        { name: 'api', match: { prefix: '/api' } },
        { name: 'orders', match: { prefix: '/api/order' } },
        { name: 'fallback', match: { prefix: '/' } },
      ],
      [
        { path: '/api/order/7', expected: 'api' },
        { path: '/api', expected: 'api' },
        { path: '/home', expected: 'fallback' },
      ],
    );
  });
});

describe('CompiledRoute.upstreamPath', () => {
  const cases: [prefix: string, stripPrefix: boolean, path: string, upstream: string][] = [
    ['/api/order', true, '/api/order/7', '/7'],
    ['/api/order', true, '/api/order', '/'],
    ['/api/order', true, '/api/order/', '/'],
    ['/svc/', true, '/svc/health', '/health'],
    ['/api/order', false, '/api/order/7', '/api/order/7'],
    ['/', true, '/anything', '/anything'],
    ['/api/order', true, '/api;v=1/order;x/7;y', '/7;y'],
    ['/api/order', true, '/api/order;v=1', '/'],
  ];
  for (const [prefix, stripPrefix, path, upstream] of cases) {
    it(`${stripPrefix ? 'strips' : 'keeps'} ${prefix}: ${path} → ${upstream}`, () => {
      const [route] = routeTable([{ name: 'r', match: { prefix }, stripPrefix }]).routes;
      assert.equal(route!.upstreamPath(path), upstream);
    });
  }

  it('leaves an exact-path route alone', () => {
    const [route] = routeTable([{ name: 'health', match: { path: '/healthz' }, stripPrefix: true }]).routes;
    assert.equal(route!.upstreamPath('/healthz'), '/healthz');
  });
});

describe('RouteTable.services', () => {
  it('lists every service some route sends to, once', () => {
    const table = parsedTable([
      { name: 'a', match: { prefix: '/a' }, service: 'alpha' },
      { name: 'b', match: { prefix: '/b' }, weighted: [{ service: 'alpha', weight: 1 }, { service: 'beta', weight: 3 }] },
    ]);
    assert.deepEqual([...table.services()].sort(), ['alpha', 'beta']);
  });
});
