// test/support/redis.ts on a machine without a Redis on 6379: the shared tests get a redis-server of their own.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refusedPort } from './http.ts';
import { inspectRedis, sharedRedis, startPrivateRedis } from './redis.ts';

describe('the shared Redis of the tests', () => {
  it('is the server that answers on the port', async () => {
    const running = await startPrivateRedis();
    try {
      assert.equal(await sharedRedis(running.port), running.url);
    } finally {
      await running.stop();
    }
  });

  it('is a redis-server of its own when nothing answers there', async () => {
    const port = await refusedPort();
    const url = await sharedRedis(port);
    assert.notEqual(url, `redis://127.0.0.1:${port}`);
    const client = await inspectRedis(url);
    try {
      assert.equal(await client.ping(), 'PONG');
    } finally {
      client.disconnect();
    }
  });
});
