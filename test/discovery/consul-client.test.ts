// The client and its one query, against the Consul API fixture: the index as Consul reports it, the body
// unchecked, cancellation, and a connection cut mid-answer failing at once.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { consulClient, consulEndpoint, queryHealth, type ConsulClient } from '../../src/discovery/consul-client.ts';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';

describe('queryHealth', { timeout: 30_000 }, () => {
  let consul: ConsulFixture;
  let client: ConsulClient;

  beforeEach(async () => {
    consul = await startConsulFixture({ datacenters: ['dc1', 'dc2'] });
    client = consulClient({ address: consul.address, token: '', stale: true });
  });
  afterEach(async () => {
    client.destroy();
    await consul.close();
  });

  const query = (index = 0, waitMs = 30_000) => ({ service: 'orders', datacenter: 'dc2', index, waitMs, cancel: new EventEmitter() });

  test('returns the body as sent and X-Consul-Index as a number (NaN when missing)', async () => {
    consul.register('dc2', { service: 'orders', port: 9001 });
    const answer = await queryHealth(client, query());
    assert.equal(answer.index, consul.indexOf('orders', 'dc2'));
    assert.equal((answer.body as unknown[]).length, 1);
    const asked = consul.requests.at(-1)!;
    assert.deepEqual([asked.query.dc, asked.query.stale, asked.query.index], ['dc2', '1', undefined]);
    consul.faults.indexHeader('missing');
    assert.ok(Number.isNaN((await queryHealth(client, query())).index));
  });

  test('a blocking query sends index and wait, and is cancelled by its emitter', async () => {
    const q = query(consul.indexOf('orders', 'dc2'), 20_000);
    const parked = queryHealth(client, q);
    await consul.waitForBlocking(1);
    assert.deepEqual([consul.requests.at(-1)!.query.index, consul.requests.at(-1)!.query.wait], [String(q.index), '20000ms']);
    q.cancel.emit('cancel');
    await assert.rejects(parked, /aborted/);
  });

  test('an answer cut mid-body by a plain close fails at once instead of waiting for the query timeout', async () => {
    consul.register('dc2', { service: 'orders', port: 9001 });
    consul.faults.resetMidBody(1, 'close');
    const started = performance.now();
    await assert.rejects(queryHealth(client, query()), /connection closed in the middle of the answer/);
    assert.ok(performance.now() - started < 5000, 'well before the 10 s timeout of a plain read');
  });
});

test('the endpoint falls back to CONSUL_HTTP_ADDR and CONSUL_HTTP_TOKEN, then to the local agent', () => {
  const env = { CONSUL_HTTP_ADDR: 'consul.internal:8501', CONSUL_HTTP_TOKEN: 'secret' };
  assert.deepEqual(consulEndpoint({ address: '', token: '' }, env), { url: new URL('http://consul.internal:8501'), token: 'secret' });
  assert.equal(consulEndpoint({ address: '', token: '' }, {}).url.href, 'http://127.0.0.1:8500/');
  assert.equal(consulEndpoint({ address: 'https://c:8501', token: 't' }, env).token, 't');
});
