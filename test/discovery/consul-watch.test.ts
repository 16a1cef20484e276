// The watch loop alone, fed scripted answers and failures: every failure is one failed round, logged once per
// outage, and nothing escapes the loop.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { HealthAnswer, HealthQuery } from '../../src/discovery/consul-client.ts';
import { nextQueryIndex, Watch } from '../../src/discovery/consul-watch.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { captureLog } from '../support/gateway.ts';
import { pollUntil } from '../support/http.ts';

const escaped: unknown[] = [];
const collect = (reason: unknown): void => void escaped.push(reason);
before(() => process.on('unhandledRejection', collect));
after(() => process.off('unhandledRejection', collect));

type Step = HealthAnswer | Error | (() => never);

/** A watch whose queries get `steps` in turn, then block until stopped. */
function scripted(steps: Step[], accept: (body: unknown) => boolean = () => true) {
  const { stream, capture } = captureLog();
  const queries: HealthQuery[] = [];
  const watch = new Watch({
    service: 'orders',
    datacenter: 'dc1',
    waitMs: 30_000,
    logger: createLogger({ destination: stream, level: 'debug' }),
    accept,
    query: async (query) => {
      queries.push(query);
      const step = steps.shift();
      if (step === undefined) return new Promise<never>((_, reject) => query.cancel.once('cancel', () => reject(new Error('cancelled'))));
      if (step instanceof Error) throw step;
      if (typeof step === 'function') return step();
      return step;
    },
  });
  return { watch, queries, log: capture };
}

test('every failure of a round is survived: thrown errors, a body that does not parse, an answer refused, an index going back', async () => {
  const accepted: unknown[] = [];
  const { watch, queries, log } = scripted(
    [
      { body: ['first'], index: 10 },
      new Error('connection closed in the middle of the answer'),
      () => {
        throw new SyntaxError('decode (application/json) failed: Unexpected token');
      },
      { body: 'refuse me', index: 11 },
      { body: ['after the outage'], index: 12 },
      { body: ['restored'], index: 4 },
      { body: ['again'], index: 5 },
    ],
    (body) => {
      if (body === 'refuse me') throw new Error('the answer is not a list of health entries (string)');
      accepted.push(body);
      return true;
    },
  );
  try {
    await pollUntil(() => (queries.length === 8 ? true : undefined), 10_000, 'eight queries');
    assert.deepEqual(accepted, [['first'], ['after the outage'], ['restored'], ['again']]);
    // a failed round starts the next from index 0; an index that went back (12 → 4) asks once without one
    assert.deepEqual(queries.map((q) => q.index), [0, 10, 0, 0, 0, 12, 0, 5]);
    const failures = log.lines.filter((line) => line.msg === 'consul query failed; serving the last known snapshot');
    assert.equal(failures.length, 1, 'one outage, logged once');
    assert.equal(failures[0]!.err, 'connection closed in the middle of the answer');
    assert.ok(log.lines.some((line) => line.msg === 'consul reachable again'));
    assert.deepEqual(escaped, []);
  } finally {
    watch.stop();
  }
});

test('a held answer (flap guard) is confirmed at once by a read without an index', async () => {
  let calls = 0;
  const { watch, queries } = scripted([{ body: [], index: 7 }, { body: [], index: 7 }], () => ++calls > 1);
  try {
    await pollUntil(() => (queries.length === 3 ? true : undefined), 5000, 'three queries');
    assert.deepEqual(queries.map((q) => q.index), [0, 0, 7]);
  } finally {
    watch.stop();
  }
});

test('first answer and first round: a failure ends the first round but is no answer', async () => {
  const { watch } = scripted([new Error('500 No cluster leader')]);
  let answered = false;
  void watch.firstAnswer.then(() => (answered = true));
  await watch.firstRound;
  assert.equal(answered, false);
  watch.stop();
});

test("the next query's index follows Consul's rules", () => {
  assert.equal(nextQueryIndex(0, 42), 42);
  assert.equal(nextQueryIndex(42, 42), 42);
  assert.equal(nextQueryIndex(42, 7), 0, 'backwards: one non-blocking read');
  for (const reported of [0, -3]) assert.equal(nextQueryIndex(42, reported), 1, `${reported}`);
  assert.equal(nextQueryIndex(42, Number.NaN), 42, 'missing: the last index stands');
  assert.equal(nextQueryIndex(0, Number.NaN), 1);
});
