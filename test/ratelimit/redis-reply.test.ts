// The script's reply is read at the boundary: a reply of another shape (a proxy in front of Redis, a server
// that only speaks its protocol) sends its requests to the fallback with a rate-limited warning, and never
// crashes the gateway or leaves a request waiting.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import type { Admission } from '../../src/ratelimit/decision.ts';
import { RedisStore } from '../../src/ratelimit/redis-store.ts';
import { BucketError, MalformedReplyError, parseBucketReplies } from '../../src/ratelimit/redis-reply.ts';
import { bucketPolicy, recordingLogger, storeConfig } from './support.ts';

const one = [{ wanted: 3 }];

describe('parseBucketReplies', () => {
  it('reads granted requests, fractional tokens left and the wait, per bucket', () => {
    assert.deepEqual(parseBucketReplies([2, '0.5', 1500, 0, '0', 250_000], [{ wanted: 2 }, { wanted: 1 }]), [
      { granted: 2, tokensLeft: 0.5, waitMs: 1.5 },
      { granted: 0, tokensLeft: 0, waitMs: 250 },
    ]);
  });

  it("reads a key of another type as that bucket's own error", () => {
    const [error] = parseBucketReplies([-1, 'WRONGTYPE Operation against a key holding the wrong kind of value', 0], one);
    assert.ok(error instanceof BucketError);
  });

  for (const [what, reply] of [
    ['not an array', 'OK'],
    ['null', null],
    ['too few entries', [1, '2']],
    ['entries for another number of buckets', [1, '2', 0, 1, '1', 0]],
    ['more granted than wanted', [4, '2', 0]],
    ['a negative count', [-2, '2', 0]],
    ['a fractional count', [1.5, '2', 0]],
    ['tokens that are no number', [1, 'lots', 0]],
    ['negative tokens', [1, '-1', 0]],
    ['a wait that is a string', [1, '2', '0']],
    ['a nested array', [[1], '2', 0]],
  ] as const) {
    it(`refuses ${what}`, () => {
      assert.throws(() => parseBucketReplies(reply, one), MalformedReplyError);
    });
  }
});

/** Speaks just enough RESP for ioredis (INFO, PING, QUIT, anything else +OK) and answers every script call with `reply`. */
async function fakeRedis(reply: string): Promise<{ url: string; scriptCalls: () => number; server: Server }> {
  let calls = 0;
  const server = createServer((socket: Socket) => {
    let buffered = '';
    socket.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('latin1');
      for (;;) {
        const command = takeCommand(buffered);
        if (command === undefined) return;
        buffered = buffered.slice(command.length);
        const name = command.args[0]?.toUpperCase();
        if (name === 'INFO') socket.write('$21\r\n# Server\r\nloading:0\r\n\r\n');
        else if (name === 'PING') socket.write('+PONG\r\n');
        else if (name === 'QUIT') socket.end('+OK\r\n');
        else if (name === 'EVALSHA' || name === 'EVAL') {
          calls += 1;
          socket.write(reply);
        } else socket.write('+OK\r\n');
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { url: `redis://127.0.0.1:${(server.address() as AddressInfo).port}`, scriptCalls: () => calls, server };
}

/** One RESP array of bulk strings from the front of `text`, or undefined until it has all arrived. */
function takeCommand(text: string): { args: string[]; length: number } | undefined {
  const header = /^\*(\d+)\r\n/.exec(text);
  if (!header) return undefined;
  let at = header[0].length;
  const args: string[] = [];
  for (let i = 0; i < Number(header[1]); i++) {
    const bulk = /^\$(\d+)\r\n/.exec(text.slice(at));
    if (!bulk) return undefined;
    const start = at + bulk[0].length;
    const end = start + Number(bulk[1]);
    if (text.length < end + 2) return undefined;
    args.push(text.slice(start, end));
    at = end + 2;
  }
  return { args, length: at };
}

describe('a malformed script reply', { timeout: 30_000 }, () => {
  for (const [what, reply] of [
    ['a status instead of the array', '+OK\r\n'],
    ['an array of the wrong length', '*2\r\n:1\r\n$1\r\n0\r\n'],
    ['tokens that are no number', '*3\r\n:1\r\n$4\r\nlots\r\n:0\r\n'],
  ] as const) {
    it(`(${what}) sends its requests to the fallback, warns at most once per interval, and keeps Redis in use`, async (t) => {
      const fake = await fakeRedis(reply);
      t.after(() => fake.server.close());
      const { logger, lines } = recordingLogger();
      const store = new RedisStore(storeConfig(fake.url, { commandTimeout: 1000 }), logger);
      t.after(() => store.close());
      await store.whenAvailable(5000);
      const fallback: Admission = { counted: false, allowed: true };
      const policy = bucketPolicy('garbled', 10, 1);
      for (let round = 0; round < 3; round++) {
        const decisions: Admission[] = await Promise.all([store.decide(policy, 'a', (): Admission => fallback), store.decide(policy, 'b', (): Admission => fallback)]);
        assert.deepEqual(decisions, [fallback, fallback]);
      }
      assert.equal(fake.scriptCalls(), 3, 'Redis is still asked: it answers, only not in a usable shape');
      const warnings = lines.filter((line) => String(line.msg).startsWith('rate limits: redis sent a reply'));
      assert.equal(warnings.length, 1, 'warned once for three calls');
      assert.match(String(warnings[0]!.err), /cannot read/);
      assert.equal(store.stats.byFallback, 6);
    });
  }
});
