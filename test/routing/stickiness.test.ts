// Sticky sessions end to end (DESIGN.md "Locality", last rule): a header, cookie or query key pins a user
// to one instance of the chosen tier by rendezvous hashing; only the users of a removed instance move,
// and they move back when it returns. Without a key, power of two choices on in-flight requests.
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { ServerResponse } from 'node:http';
import { echo } from '../support/upstream.ts';
import {
  distinct,
  startZonedGateway,
  tally,
  type Reply,
  type RequestOptions,
  type RouteInput,
  type ZonedGateway,
  type ZoneLayout,
} from './support.ts';

/** sh-a, the gateway zone and so the tier of every request here, holds four instances. */
const LAYOUT: ZoneLayout = { 'sh-a': 4, 'sh-b': 2 };

const STICKY_ROUTES: RouteInput[] = [
  { name: 'by-header', match: { prefix: '/by-header' }, service: 'app', sticky: { header: 'X-User-ID' } },
  { name: 'by-cookie', match: { prefix: '/by-cookie' }, service: 'app', sticky: { cookie: 'sid' } },
  { name: 'by-query', match: { prefix: '/by-query' }, service: 'app', sticky: { query: 'uid' } },
  { name: 'unkeyed', match: { prefix: '/' }, service: 'app' },
];

type KeyKind = 'header' | 'cookie' | 'query';

/** A request carrying `user` as its sticky key the `kind` way, among unrelated cookies and parameters. */
function keyedRequest(kind: KeyKind, user: string): RequestOptions {
  switch (kind) {
    case 'header':
      return { path: '/by-header/cart', headers: { 'x-user-id': user } };
    case 'cookie':
      return { path: '/by-cookie/cart', headers: { cookie: `theme=dark; sid=${user}; lang=en` } };
    case 'query':
      return { path: `/by-query/cart?page=2&uid=${encodeURIComponent(user)}&sort=asc`, headers: {} };
  }
}

async function stickyGateway(t: TestContext, layout: ZoneLayout = LAYOUT): Promise<ZonedGateway> {
  const zoned = await startZonedGateway({ services: { app: layout }, routes: STICKY_ROUTES });
  t.after(() => zoned.close());
  return zoned;
}

/** One request per user; the instance each user landed on. Every request must be served from sh-a. */
async function assignmentOf(zoned: ZonedGateway, kind: KeyKind, users: readonly string[]): Promise<Map<string, string>> {
  const replies = await zoned.client.many(users.length, (i) => keyedRequest(kind, users[i]!));
  const local = zoned.ids(['sh-a']);
  return new Map(
    replies.map((reply, i) => {
      assert.equal(reply.status, 200, reply.text);
      assert.equal(reply.tier, 'zone');
      assert.ok(local.includes(reply.upstream), `${users[i]} was served by ${reply.upstream}, outside sh-a`);
      return [users[i]!, reply.upstream];
    }),
  );
}

const users = (count: number): string[] => Array.from({ length: count }, (_, i) => `user-${i}`);

describe('sticky keys', () => {
  for (const kind of ['header', 'cookie', 'query'] as const) {
    it(`keeps each user on one instance across 50 requests (${kind} key)`, async (t) => {
      const zoned = await stickyGateway(t);
      const group = users(10);
      const replies = await zoned.client.many(group.length * 50, (i) => keyedRequest(kind, group[i % group.length]!));
      for (const [index, user] of group.entries()) {
        const own = replies.filter((_, i) => i % group.length === index);
        assert.equal(distinct(own, (r) => r.upstream).length, 1, `${user} was spread over several instances`);
      }
      assert.ok(distinct(replies, (r) => r.upstream).length >= 2, 'ten users should not all share one instance');
    });

    it(`moves only the users of an unhealthy instance, and moves them back when it recovers (${kind} key)`, async (t) => {
      const zoned = await stickyGateway(t);
      const group = users(500);
      const before = await assignmentOf(zoned, kind, group);
      const removed = before.get('user-0')!;

      zoned.setHealthy([removed], false);
      const during = await assignmentOf(zoned, kind, group);
      const moved = group.filter((user) => before.get(user) === removed);
      for (const user of group) {
        if (moved.includes(user)) assert.notEqual(during.get(user), removed, `${user} stayed on the unhealthy instance`);
        else assert.equal(during.get(user), before.get(user), `${user} moved although its instance stayed healthy`);
      }
      // Rendezvous hashing hands the removed instance's users to all the others, not to one neighbour.
      assert.ok(new Set(moved.map((user) => during.get(user))).size >= 2, 'the moved users all landed on one instance');

      zoned.setHealthy([removed], true);
      assert.deepEqual(await assignmentOf(zoned, kind, group), before);
    });
  }
});

describe('requests without a sticky key', () => {
  it('spread over every instance of the tier', async (t) => {
    const zoned = await stickyGateway(t);
    const replies = await zoned.client.sequential(200, (i) => (i % 2 === 0 ? { path: '/unkeyed' } : { path: '/by-header/cart' }));
    const counts = tally(replies);
    assert.deepEqual([...counts.keys()].sort(), zoned.ids(['sh-a']).sort());
    for (const [id, count] of counts) assert.ok(count >= 20, `${id} served only ${count} of 200 requests`);
  });

  it('avoid an instance that is still busy with earlier requests (power of two choices)', async (t) => {
    const zoned = await stickyGateway(t, { 'sh-a': 2 });
    const [busy, idle] = zoned.ids(['sh-a']) as [string, string];
    // The busy instance holds the first request it gets and answers every later one at once.
    const held: ServerResponse[] = [];
    const arrived = Promise.withResolvers<void>();
    const answer = echo(busy);
    zoned.upstreams.get(busy)!.handle((req, res) => {
      if (held.length > 0) return answer(req, res);
      req.resume();
      held.push(res);
      arrived.resolve();
    });

    // Requests go out one at a time until one of them is stuck on the busy instance.
    const outstanding: Promise<Reply>[] = [];
    try {
      for (let i = 0; i < 64 && held.length === 0; i++) {
        const reply = zoned.client.request({ path: '/unkeyed' });
        outstanding.push(reply);
        await Promise.race([reply, arrived.promise]);
      }
      assert.equal(held.length, 1, 'no request reached the busy instance');

      const replies = await zoned.client.sequential(100, () => ({ path: '/unkeyed' }));
      assert.deepEqual(distinct(replies, (r) => r.upstream), [idle]);
    } finally {
      // Released even when an assertion failed: the client cannot close with a request outstanding.
      for (const res of held) res.end('{}');
    }
    for (const reply of await Promise.all(outstanding)) assert.equal(reply.status, 200);
  });
});
