// The in-flight count power-of-two-choices compares: up while an exchange runs (body included), back to
// zero however it ends — answered, refused, timed out, or cut short by the client.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import type { Instance } from '../../src/discovery/instance.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configYaml, pollUntil, refusedPort, send } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

describe('in-flight requests per instance', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  let refused: string;
  /** the response the upstream is still streaming, held open until the test ends it */
  let streaming: ServerResponse | undefined;

  const load = (address: string, service = 'app'): number =>
    gateway.gateway.upstreams.inFlight.load({ id: `${service}@${address}` } as Instance);

  before(async () => {
    upstream = await startUpstream('app', (req, res) => {
      if (req.url === '/stream') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first chunk\n');
        streaming = res;
      } else if (req.url === '/silent') {
        // never answers: the per-try timeout ends the attempt
      } else {
        res.end('ok');
      }
    });
    refused = `127.0.0.1:${await refusedPort()}`;
    gateway = await startGateway(
      configYaml({
        services: { app: [upstream.address], gone: [refused] },
        routes: [
          { name: 'gone', match: { prefix: '/gone' }, service: 'gone', retries: { maxRetries: 0 } },
          { name: 'app', match: { prefix: '/' }, service: 'app', retries: { maxRetries: 0, perTryTimeout: '200ms' } },
        ],
      }),
    );
  });

  after(async () => {
    streaming?.destroy();
    await gateway.close();
    await upstream.close();
  });

  it('counts an answered request until its response is through', async () => {
    const result = await send(gateway.url, { path: '/done' });
    assert.equal(result.status, 200);
    await pollUntil(() => (load(upstream.address) === 0 ? true : undefined), 2_000, 'the count to return to 0');
  });

  it('counts a streaming response while it streams, and not after the client leaves mid-body', async () => {
    const client = request(`${gateway.url}/stream`);
    const response = await new Promise<IncomingMessage>((resolve, reject) => {
      client.once('response', resolve).once('error', reject).end();
    });
    assert.equal(response.statusCode, 200);
    await new Promise((resolve) => response.once('data', resolve));
    assert.equal(load(upstream.address), 1, 'in flight while the body streams');
    client.destroy();
    await pollUntil(() => (load(upstream.address) === 0 ? true : undefined), 2_000, 'the count to return to 0 after the client left');
  });

  it('does not keep counting a refused connection or a timed-out attempt', async () => {
    assert.equal((await send(gateway.url, { path: '/gone/x' })).status, 502);
    assert.equal((await send(gateway.url, { path: '/silent' })).status, 504);
    await pollUntil(() => (load(refused, 'gone') === 0 && load(upstream.address) === 0 ? true : undefined), 2_000, 'both counts at 0');
  });
});
