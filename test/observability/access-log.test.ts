// The access log (DESIGN.md "Access log"): one `msg: "access"` line per request with every listed field
// and the right values for a proxied 200, a 404 and a 502; credentials never reach any log line.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { configYaml, refusedPort, send, type HttpResult } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const ACCESS_FIELDS = [
  'reqId', 'traceId', 'method', 'path', 'status', 'durationMs', 'route', 'service', 'upstream', 'upstreamAddr', 'tier',
  'clientLocality', 'regionHeader', 'sticky', 'attempts', 'rateLimited', 'breaker', 'bytesIn', 'bytesOut', 'remoteAddr',
  'userAgent', 'error',
];

const SECRETS = {
  authorization: 'Bearer auth-secret-6f1d',
  cookie: 'sid=cookie-secret-93ab',
  setCookie: 'session=set-cookie-secret-1c7e; HttpOnly',
};

type AccessLine = Record<string, unknown>;

describe('access log', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  let refused: string;
  const RESPONSE_BODY = 'order accepted';

  before(async () => {
    upstream = await startUpstream('orders', (req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(201, { 'content-type': 'text/plain', 'set-cookie': SECRETS.setCookie });
        res.end(RESPONSE_BODY);
      });
    });
    refused = `127.0.0.1:${await refusedPort()}`;
    gateway = await startGateway(
      configYaml({
        services: { 'order-service': [upstream.address], 'gone-service': [refused] },
        routes: [
          { name: 'orders', match: { prefix: '/api/orders' }, service: 'order-service', sticky: { header: 'X-User-ID' } },
          { name: 'gone', match: { prefix: '/gone' }, service: 'gone-service', retries: { maxRetries: 0 } },
        ],
      }),
    );
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  /** Sends with credentials and a user agent, and returns the response and its access line. */
  async function logged(method: string, path: string, body?: string): Promise<{ result: HttpResult; line: AccessLine }> {
    const headers = {
      authorization: SECRETS.authorization,
      cookie: SECRETS.cookie,
      'user-agent': 'access-log-test/1.0',
      'x-region-id': 'SH-A',
      'x-user-id': 'user-42',
    };
    const result = await send(gateway.url, { method, path, headers, body });
    const reqId = result.headers['x-request-id'];
    const line = await gateway.log.waitFor((entry) => entry.msg === 'access' && entry.reqId === reqId);
    return { result, line };
  }

  function assertCommonFields(line: AccessLine, result: HttpResult, method: string): void {
    assert.deepEqual(ACCESS_FIELDS.filter((field) => !(field in line)), [], 'fields missing from the access line');
    assert.equal(line.reqId, result.headers['x-request-id']);
    assert.equal(line.traceId, result.headers['x-trace-id']);
    assert.equal(line.method, method);
    assert.equal(line.status, result.status);
    assert.ok(typeof line.durationMs === 'number' && line.durationMs >= 0 && line.durationMs < 5000, `durationMs ${line.durationMs}`);
    assert.equal(line.regionHeader, 'SH-A');
    assert.equal(line.rateLimited, false);
    assert.equal(line.remoteAddr, '127.0.0.1');
    assert.equal(line.userAgent, 'access-log-test/1.0');
    assert.equal(line.bytesOut, result.bodyBytes);
  }

  it('logs a proxied response with its route, upstream, locality and byte counts', async () => {
    const { result, line } = await logged('POST', '/api/orders/7?expand=items', 'quantity=3');
    assert.equal(result.status, 201);
    assertCommonFields(line, result, 'POST');
    assert.equal(line.path, '/api/orders/7', 'the path is logged without its query');
    assert.equal(line.route, 'orders');
    assert.equal(line.service, 'order-service');
    assert.equal(line.upstream, `order-service@${upstream.address}`);
    assert.equal(line.upstreamAddr, upstream.address);
    assert.equal(line.tier, 'zone');
    assert.equal(line.clientLocality, 'sh-a');
    assert.equal(line.sticky, true);
    assert.equal(line.attempts, 1);
    assert.equal(line.bytesIn, 'quantity=3'.length);
    assert.equal(line.bytesOut, RESPONSE_BODY.length);
    assert.equal(line.error, null);
  });

  it('logs the chosen instance breaker state', async () => {
    const { line } = await logged('GET', '/api/orders/7');
    assert.equal(line.breaker, 'closed');
  });

  it('logs a 404 with its error code and no route or upstream', async () => {
    const { result, line } = await logged('GET', '/nowhere');
    assert.equal(result.status, 404);
    assertCommonFields(line, result, 'GET');
    assert.equal(line.path, '/nowhere');
    for (const field of ['route', 'service', 'upstream', 'upstreamAddr', 'tier', 'breaker']) assert.equal(line[field], null, field);
    assert.equal(line.sticky, false);
    assert.equal(line.attempts, 0);
    assert.equal(line.bytesIn, 0);
    assert.ok(result.bodyBytes > 0);
    assert.equal(line.error, 'route_not_found');
  });

  it('logs a 502 with the instance it could not reach', async () => {
    const { result, line } = await logged('GET', '/gone/orders');
    assert.equal(result.status, 502);
    assertCommonFields(line, result, 'GET');
    assert.equal(line.route, 'gone');
    assert.equal(line.service, 'gone-service');
    assert.equal(line.upstream, `gone-service@${refused}`);
    assert.equal(line.upstreamAddr, refused);
    assert.equal(line.tier, 'zone');
    assert.equal(line.clientLocality, 'sh-a');
    assert.equal(line.attempts, 1);
    assert.equal(line.error, 'upstream_unavailable');
  });

  it('writes exactly one access line per request, and no credential in any line', async () => {
    await gateway.close(); // flushes the log: nothing more can be written after this
    const accessLines = gateway.log.lines.filter((line) => line.msg === 'access');
    const perRequest = Map.groupBy(accessLines, (line) => line.reqId);
    assert.equal(perRequest.size, accessLines.length, 'a request was logged twice');
    assert.ok(accessLines.length >= 3, 'the requests above were logged');

    const text = gateway.log.lines.map((line) => JSON.stringify(line)).join('\n');
    for (const secret of ['auth-secret-6f1d', 'cookie-secret-93ab', 'set-cookie-secret-1c7e']) {
      assert.ok(!text.includes(secret), `${secret} appears in the log`);
    }
  });
});
