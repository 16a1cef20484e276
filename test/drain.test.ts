// Stopping under load (what SIGTERM does): every request the gateway accepted is answered, every response written
// after the signal says `Connection: close` (also those of requests that arrived before it), and the drain ends
// with the last request in flight, not at the drain timeout.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Pool } from 'undici';
import type { UpstreamHandler } from './support/upstream.ts';
import { startZonedGateway } from './routing/support.ts';

const CLIENTS = 16;
const UPSTREAM_MS = 15;

describe('drain under load', () => {
  it('fails no accepted request, and every response after the signal closes its connection', async (t) => {
    const zoned = await startZonedGateway({ services: { app: { 'sh-a': 3 } }, gateway: { drainTimeout: '20s' } });
    t.after(() => zoned.close());
    let stopAt = 0;
    let stopping: Promise<void> | undefined;
    let drained = 0;
    let arrived = 0;
    // The signal comes while the upstreams hold requests; each answer says whether it was written after it.
    const slow: UpstreamHandler = (req, res) => {
      req.resume();
      if (++arrived === 300) {
        stopAt = performance.now();
        stopping = zoned.gateway.stop().then(() => void (drained = performance.now()));
      }
      setTimeout(() => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-length': 2, 'x-after-signal': stopAt > 0 ? '1' : '0' }).end('ok');
      }, UPSTREAM_MS * (0.5 + Math.random()));
    };
    for (const upstream of zoned.upstreams.values()) upstream.handle(slow);

    const pool = new Pool(zoned.url, { connections: CLIENTS, pipelining: 1 });
    t.after(() => pool.close());
    const answered = new Map<string, { status: number; connection: string; afterSignal: boolean }>();
    const refused = new Set<string>();
    let sent = 0;
    const worker = async (client: number): Promise<void> => {
      for (;;) {
        const id = `drain-${client}-${sent++}`;
        try {
          const response = await pool.request({ path: '/', method: 'GET', headers: { 'x-request-id': id } });
          await response.body.text();
          answered.set(id, {
            status: response.statusCode,
            connection: String(response.headers.connection),
            afterSignal: response.headers['x-after-signal'] === '1',
          });
        } catch {
          // a new connection after the listener closed: the gateway never saw this request
          refused.add(id);
          return;
        }
      }
    };
    await Promise.all(Array.from({ length: CLIENTS }, (_, i) => worker(i)));
    await stopping;

    const accepted = zoned.log.lines.filter((line) => line.msg === 'access').map((line) => String(line.reqId));
    assert.ok(accepted.length >= 300, `${accepted.length} accepted, ${answered.size} answered, ${refused.size} refused`);
    for (const id of accepted) assert.equal(answered.get(id)?.status, 200, `request ${id} was accepted, and must have been answered 200`);
    for (const id of refused) assert.ok(!accepted.includes(id), `request ${id} failed at the client after the gateway accepted it`);
    const afterSignal = [...answered.values()].filter((reply) => reply.afterSignal);
    // at least the request whose arrival sent the signal is answered after it; how many others were at the upstreams
    // then depends on the machine's load
    assert.ok(afterSignal.length >= 1, `no response was written after the signal; ${answered.size} answered, ${refused.size} refused`);
    assert.deepEqual(
      afterSignal.filter((reply) => reply.connection !== 'close'),
      [],
      'every response written after the signal says Connection: close',
    );
    assert.ok(drained - stopAt < 5_000, `the drain took ${(drained - stopAt).toFixed(0)} ms: it ends with the last request`);
  });
});
