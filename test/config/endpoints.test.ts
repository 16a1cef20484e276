// Addresses are judged as the clients that use them read them: what ioredis and the Consul client accept passes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { consulAddressProblem, consulUrl, maskUserinfo, redisAddressProblem } from '../../src/config/endpoints.ts';

const isRedisAddress = (value: string): boolean => redisAddressProblem(value) === undefined;
const isConsulAddress = (address: string): boolean => consulAddressProblem(address) === undefined;

describe('isRedisAddress', () => {
  const accepted = ['redis://127.0.0.1:6379', 'redis://:secret@cache:6380/2', 'rediss://cache.internal', 'cache:6379', '6379', '/run/redis.sock', '//cache:6379', 'default:secret@cache:6379', 'default:1secret@cache:6379'];
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

describe('isRedisAddress: what ioredis would misread', () => {
  // ioredis reads these without an error, but as something else than written
  const misread = ['http://cache:6379', 'unix:///run/redis.sock', 'redis:/cache:6379', 'Rediss://cache:6380', 'cache:6379/2', 'redis://cache/db1', '70000'];
  for (const address of misread) {
    it(`refuses ${address}`, () => {
      assert.equal(isRedisAddress(address), false);
      assert.match(redisAddressProblem(address) ?? '', /^expected redis:\/\/.*, got "/);
    });
  }
});

describe('maskUserinfo', () => {
  it('masks the password of a URL, also one no parser accepts, and of user:password@host', () => {
    assert.equal(maskUserinfo('redis://admin:pw@cache:63 79'), 'redis://admin:***@cache:63 79');
    assert.equal(maskUserinfo('rediss://:s3cr3t@cache:6380/0'), 'rediss://:***@cache:6380/0');
    assert.equal(maskUserinfo('admin:pw@cache:6379'), 'admin:***@cache:6379');
  });
  it('leaves text without a password alone', () => {
    for (const text of ['redis://admin@cache:6379', 'cache:6379', '//cache:6379', 'http://consul:8500']) assert.equal(maskUserinfo(text), text);
  });
});

describe('consul addresses', () => {
  it('refuses schemes other than http and https, which the client would read as a host name', () => {
    for (const address of ['unix:///run/consul.sock', 'grpc://consul:8502', 'https:/consul:8500', 'consul', 'http://consul:8500/v1', 'http://u:p@consul:8500']) {
      assert.equal(isConsulAddress(address), false, address);
    }
    assert.match(consulAddressProblem('grpc://consul:8502') ?? '', /"grpc:" is not supported/);
  });

  it('reads host:port as http://host:port', () => {
    assert.equal(consulUrl('consul:8500').href, 'http://consul:8500/');
    assert.equal(consulUrl('https://consul.internal').href, 'https://consul.internal/');
  });
  it('refuses what is not a URL', () => {
    assert.equal(isConsulAddress('http://consul:85x00'), false);
    assert.equal(isConsulAddress('consul:8500'), true);
  });
});
