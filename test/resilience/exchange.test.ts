// A bug on the exchange's own path (here: the breakers throwing while a failed try is weighed) costs that request a
// 502 with the gateway's JSON, an error line and its access line; the exchange never hangs and the process goes on.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startGateway } from '../support/gateway.ts';
import { assertGatewayError, refusedPort, send, singleRouteYaml, within } from '../support/http.ts';

describe('the exchange', () => {
  it('ends a request whose exchange throws with 502 and its access line, and serves the next one', async (t) => {
    const refused = await refusedPort();
    const gateway = await startGateway(singleRouteYaml(`127.0.0.1:${refused}`, { route: { retries: { maxRetries: 0 } } }));
    t.after(() => gateway.close());
    const breakers = gateway.gateway.breakers;
    const record = breakers.record.bind(breakers);
    breakers.record = () => {
      throw new Error('breaker bookkeeping failed');
    };
    const reply = await within(send(gateway.url, { path: '/boom' }), 5_000, 'the answer to a request whose exchange threw');
    assertGatewayError(reply, 502, 'upstream_unavailable');
    const requestId = reply.headers['x-request-id'];
    const error = await within(gateway.log.waitFor((line) => line.msg === 'request failed inside the gateway'), 5_000, 'the error line');
    assert.equal(error.reqId, requestId);
    assert.match(String(error.err), /breaker bookkeeping failed/);
    const access = await within(gateway.log.waitFor((line) => line.msg === 'access' && line.reqId === requestId), 5_000, 'its access line');
    assert.equal(access.status, 502);

    breakers.record = record;
    // the gateway goes on: the next request to the same dead instance gets the ordinary answer
    assertGatewayError(await send(gateway.url, { path: '/after' }), 502, 'upstream_unavailable');
    assert.equal(gateway.log.lines.filter((line) => line.msg === 'request failed inside the gateway').length, 1);
  });
});
