// A client that goes away takes its upstream request with it: the gateway aborts the exchange, so the
// upstream sees its request closed instead of working for nobody.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { request, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { send, singleRouteYaml, within } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const CLOSE_DEADLINE_MS = 3000;

interface HeldExchange {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
}

describe('client disconnect', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startUpstream('slow');
    gateway = await startGateway(singleRouteYaml(upstream.address));
  });
  after(async () => {
    // upstream first: an exchange it still holds would otherwise keep the gateway draining
    await upstream.close();
    await gateway.close();
  });

  /** Makes the upstream hold the next request (`respond` decides what, if anything, it sends). */
  function holdNextRequest(respond: (exchange: HeldExchange) => void = () => {}): Promise<HeldExchange> {
    const { promise, resolve } = Promise.withResolvers<HeldExchange>();
    upstream.handle((req, res) => {
      respond({ req, res });
      resolve({ req, res });
    });
    return promise;
  }

  function startClientRequest(path: string): ClientRequest {
    const url = new URL(gateway.url);
    const req = request({ host: url.hostname, port: url.port, path, agent: false });
    req.on('error', () => {}); // the test destroys it on purpose
    req.end();
    return req;
  }

  /**
   * Destroys the client's request, awaits the held upstream response's 'close' (it must not have
   * finished on its own), and returns the request's access line.
   */
  async function leaveAndAwaitUpstreamClose(client: ClientRequest, upstreamRes: ServerResponse): Promise<Record<string, unknown>> {
    const upstreamClosed = once(upstreamRes, 'close');
    client.destroy();
    await within(upstreamClosed, CLOSE_DEADLINE_MS, 'the upstream request to close');
    assert.equal(upstreamRes.writableEnded, false, 'the upstream response was still open');
    const path = client.path;
    return gateway.log.waitFor((entry) => entry.msg === 'access' && entry.path === path);
  }

  it('closes the upstream request when the client leaves before the response head', async () => {
    const held = holdNextRequest();
    const client = startClientRequest('/waiting');
    const { res } = await within(held, CLOSE_DEADLINE_MS, 'the request to reach the upstream');
    const line = await leaveAndAwaitUpstreamClose(client, res);
    assert.equal(line.status, 499);
    assert.equal(line.error, 'client_closed');
  });

  it('closes the upstream request when the client leaves during a slow body', async () => {
    let ticker: NodeJS.Timeout | undefined;
    const held = holdNextRequest(({ res }) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('first chunk\n');
      ticker = setInterval(() => res.write('more\n'), 50);
      res.once('close', () => clearInterval(ticker));
    });
    const client = startClientRequest('/streaming');
    const [response] = (await within(once(client, 'response'), CLOSE_DEADLINE_MS, 'the response head')) as [IncomingMessage];
    assert.equal(response.statusCode, 200);
    await within(once(response, 'data'), CLOSE_DEADLINE_MS, 'the first body chunk');
    const { res } = await held;
    const line = await leaveAndAwaitUpstreamClose(client, res);
    assert.equal(line.status, 200);
    assert.equal(line.error, 'client_closed');
  });

  it('keeps serving after clients went away', async () => {
    upstream.handle((req, res) => {
      req.resume();
      res.end('still here');
    });
    const result = await send(gateway.url, { path: '/after' });
    assert.equal(result.status, 200);
    assert.equal(result.body.toString(), 'still here');
  });
});
