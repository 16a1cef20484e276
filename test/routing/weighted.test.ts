// Weighted routes and colour routing end to end: an 80/20 split between two services, random per request
// without a key and per user with a sticky key, and a header match that sends marked traffic to v2.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { startZonedGateway, type Reply, type RequestOptions, type RouteInput, type ZonedGateway } from './support.ts';

const SERVICES = { 'order-v1': { 'sh-a': 2, 'sh-b': 1 }, 'order-v2': { 'sh-a': 2, 'sh-b': 1 } };

function weightedRoute(extra: Partial<RouteInput> = {}): RouteInput {
  return {
    name: 'orders',
    match: { prefix: '/api/order' },
    weighted: [
      { service: 'order-v1', weight: 80 },
      { service: 'order-v2', weight: 20 },
    ],
    ...extra,
  };
}

async function ordersGateway(t: TestContext, routes: RouteInput[]): Promise<ZonedGateway> {
  const zoned = await startZonedGateway({ services: SERVICES, routes });
  t.after(() => zoned.close());
  return zoned;
}

/** `order-v2/sh-a-1` → `order-v2` */
const serviceOf = (reply: Reply): string => reply.upstream.slice(0, reply.upstream.indexOf('/'));

/** Asserts that order-v1 has 80% of `services` and order-v2 20%, each within ±3 percentage points. */
function assertSplit(services: readonly string[]): void {
  assert.equal(services.filter((s) => s !== 'order-v1' && s !== 'order-v2').length, 0, 'a request reached no order service');
  const v1Share = services.filter((s) => s === 'order-v1').length / services.length;
  assert.ok(Math.abs(v1Share - 0.8) <= 0.03, `order-v1 got ${(v1Share * 100).toFixed(1)}%, expected 80 ±3%`);
}

describe('weighted routes', () => {
  it('split 10k requests without a key 80/20', async (t) => {
    const zoned = await ordersGateway(t, [weightedRoute()]);
    const replies = await zoned.client.many(10_000, (i) => ({ path: `/api/order/${i}` }), 32);
    for (const reply of replies) assert.equal(reply.status, 200);
    assertSplit(replies.map(serviceOf));
  });

  it('keep each user on one service and split users 80/20 with a sticky key', async (t) => {
    const zoned = await ordersGateway(t, [weightedRoute({ sticky: { header: 'X-User-ID' } })]);
    const userCount = 4000;
    const asUser = (i: number) => ({ path: '/api/order/cart', headers: { 'x-user-id': `customer-${i % userCount}` } });
    const replies = await zoned.client.many(userCount * 2, asUser, 32);
    const serviceOfUser = replies.slice(0, userCount).map(serviceOf);
    replies.slice(userCount).forEach((reply, i) => {
      assert.equal(serviceOf(reply), serviceOfUser[i], `customer-${i} switched services`);
    });
    assertSplit(serviceOfUser);
  });
});

describe('colour routing', () => {
  it('sends requests marked X-Release: gray to order-v2 and all others to order-v1', async (t) => {
    const gray: RouteInput = {
      name: 'orders-gray',
      match: { prefix: '/api/order', headers: { 'X-Release': 'gray' } },
      service: 'order-v2',
    };
    const zoned = await ordersGateway(t, [gray, { name: 'orders', match: { prefix: '/api/order' }, service: 'order-v1' }]);
    const asked = (release: string | undefined): RequestOptions => ({
      path: '/api/order/7',
      headers: release === undefined ? {} : { 'x-release': release },
    });
    for (const [release, route, service] of [
      ['gray', 'orders-gray', 'order-v2'],
      [undefined, 'orders', 'order-v1'],
      ['blue', 'orders', 'order-v1'],
    ] as const) {
      const replies = await zoned.client.many(20, () => asked(release));
      for (const reply of replies) {
        assert.equal(reply.route, route, `X-Release: ${release}`);
        assert.equal(serviceOf(reply), service, `X-Release: ${release}`);
      }
    }
  });
});
