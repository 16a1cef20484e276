// Addresses are judged as the clients that use them read them: what ioredis and the Consul client accept passes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { consulUrl, isConsulAddress, isRedisAddress } from '../../src/config/endpoints.ts';

describe('isRedisAddress', () => {
  const accepted = ['redis://127.0.0.1:6379', 'redis://:secret@cache:6380/2', 'rediss://cache.internal', 'cache:6379', '6379', '/run/redis.sock', '//cache:6379'];
  const refused = ['redis://127.0.0.1:6380x', 'cache:63x79', 'redis://[::1:6379'];

  for (const address of accepted) {
    it(`accepts ${address}, as ioredis does`, () => {
      assert.equal(isRedisAddress(address), true);
      const client = new Redis(address, { lazyConnect: true });
      client.disconnect();
    });
  }
  for (const address of refused) {
    it(`refuses ${address}, on which ioredis throws`, () => {
      assert.equal(isRedisAddress(address), false);
      assert.throws(() => new Redis(address, { lazyConnect: true }));
    });
  }
});

describe('consul addresses', () => {
  it('reads host:port as http://host:port', () => {
    assert.equal(consulUrl('consul:8500').href, 'http://consul:8500/');
    assert.equal(consulUrl('https://consul.internal').href, 'https://consul.internal/');
  });
  it('refuses what is not a URL', () => {
    assert.equal(isConsulAddress('http://consul:85x00'), false);
    assert.equal(isConsulAddress('consul:8500'), true);
  });
});
