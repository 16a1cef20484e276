// ConnectionDrain on its own: before the drain nothing changes; at the drain, responses still to be written close
// their connection, and a request pipelined behind one of them is not processed. HTTP/2 is left to its GOAWAY.
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { ConnectionDrain } from '../../src/listener/drain.ts';

function exchange(socket: object, httpVersionMajor = 1, headersSent = false): { req: IncomingMessage; res: ServerResponse } {
  const req = { httpVersionMajor, socket } as unknown as IncomingMessage;
  const res = { req, headersSent, shouldKeepAlive: true } as unknown as ServerResponse;
  return { req, res };
}

describe('ConnectionDrain', () => {
  it('changes nothing before the drain', () => {
    const drain = new ConnectionDrain();
    const { req, res } = exchange({});
    assert.equal(drain.admit(req, res), true);
    assert.equal(res.shouldKeepAlive, true);
  });

  it('closes the connections of responses not yet written, also of requests that came before', () => {
    const drain = new ConnectionDrain();
    const waiting = exchange({});
    const streaming = exchange({}, 1, true);
    const h2 = exchange({}, 2);
    for (const { req, res } of [waiting, streaming, h2]) drain.admit(req, res);
    drain.begin();
    assert.equal(waiting.res.shouldKeepAlive, false);
    assert.equal(streaming.res.shouldKeepAlive, true, 'its head went out before the signal');
    assert.equal(h2.res.shouldKeepAlive, true, 'an HTTP/2 session ends with GOAWAY');
  });

  it('leaves a response that closed before the drain alone', () => {
    const drain = new ConnectionDrain();
    const done = exchange({});
    drain.admit(done.req, done.res);
    drain.closed(done.res);
    drain.begin();
    assert.equal(done.res.shouldKeepAlive, true, 'it is no longer among the open responses');
  });

  it('does not process a request pipelined behind a response that closes its connection', () => {
    const drain = new ConnectionDrain();
    const socket = {};
    const first = exchange(socket);
    drain.admit(first.req, first.res);
    drain.begin();
    const behind = exchange(socket);
    assert.equal(drain.admit(behind.req, behind.res), false);
    const elsewhere = exchange({});
    assert.equal(drain.admit(elsewhere.req, elsewhere.res), true, 'a request on another connection is served');
    assert.equal(elsewhere.res.shouldKeepAlive, false);
  });
});
