// Request and trace identity end to end: traceparent continued with a new span per hop, unsafe ids
// replaced, and X-Request-ID / X-Trace-ID on every response, the gateway's own errors included.
import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { traceIds } from '../../src/observability/trace.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { assertGatewayError, configYaml, json, mirror, refusedPort, send, type HttpResult, type Mirrored } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const PARENT_SPAN = '00f067aa0ba902b7';
const VALID_TRACEPARENT = `00-${TRACE_ID}-${PARENT_SPAN}-01`;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

interface Traced {
  readonly result: HttpResult;
  readonly upstream: Mirrored['headers'];
  /** the traceparent the upstream received, split */
  readonly traceId: string;
  readonly spanId: string;
  readonly flags: string;
}

describe('trace and request ids', () => {
  let upstream: TestUpstream;
  let gateway: TestGateway;
  before(async () => {
    upstream = await startUpstream('traced', mirror);
    gateway = await startGateway(
      configYaml({
        services: { traced: [upstream.address], gone: [`127.0.0.1:${await refusedPort()}`] },
        routes: [
          { name: 'traced', match: { prefix: '/api' }, service: 'traced' },
          { name: 'gone', match: { prefix: '/gone' }, service: 'gone' },
        ],
      }),
    );
  });
  after(async () => {
    await gateway.close();
    await upstream.close();
  });

  async function traced(headers: OutgoingHttpHeaders): Promise<Traced> {
    const result = await send(gateway.url, { path: '/api/orders', headers });
    assert.equal(result.status, 200);
    const seen = json<Mirrored>(result).headers;
    const parts = TRACEPARENT.exec(String(seen.traceparent));
    assert.ok(parts, `upstream traceparent ${seen.traceparent}`);
    return { result, upstream: seen, traceId: parts[1]!, spanId: parts[2]!, flags: parts[3]! };
  }

  it('continues a valid traceparent with a new span id, and answers with its trace id', async () => {
    const hop = await traced({ traceparent: VALID_TRACEPARENT });
    assert.equal(hop.traceId, TRACE_ID);
    assert.notEqual(hop.spanId, PARENT_SPAN);
    assert.equal(hop.flags, '01');
    assert.equal(hop.upstream['x-trace-id'], TRACE_ID);
    assert.equal(hop.result.headers['x-trace-id'], TRACE_ID);
  });

  it('gives two hops of the same trace two different span ids', async () => {
    const first = await traced({ traceparent: VALID_TRACEPARENT });
    const second = await traced({ traceparent: VALID_TRACEPARENT });
    assert.notEqual(first.spanId, second.spanId);
  });

  const invalid: [reason: string, traceparent: string][] = [
    ['the forbidden version ff', `ff-${TRACE_ID}-${PARENT_SPAN}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${PARENT_SPAN}-01`],
    ['an all-zero parent id', `00-${TRACE_ID}-${'0'.repeat(16)}-01`],
    ['upper-case hex', `00-${TRACE_ID.toUpperCase()}-${PARENT_SPAN}-01`],
    ['a truncated trace id', `00-${TRACE_ID.slice(2)}-${PARENT_SPAN}-01`],
    ['fields after version 00\'s flags', `00-${TRACE_ID}-${PARENT_SPAN}-01-more`],
    ['a later version cut short', `01-${TRACE_ID}-${PARENT_SPAN}-0`],
  ];
  for (const [reason, traceparent] of invalid) {
    it(`starts a fresh trace for a traceparent with ${reason}`, async () => {
      const hop = await traced({ traceparent });
      assert.notEqual(hop.traceId, TRACE_ID);
      assert.notEqual(hop.traceId, '0'.repeat(32));
      assert.notEqual(hop.spanId, '0'.repeat(16));
      assert.equal(hop.result.headers['x-trace-id'], hop.traceId);
    });
  }

  for (const [flags, sampled] of [['03', '01'], ['02', '00']] as const) {
    it(`continues a later version's traceparent as version 00, keeping only its sampled flag (flags ${flags})`, async () => {
      const hop = await traced({ traceparent: `01-${TRACE_ID}-${PARENT_SPAN}-${flags}-what-comes-next` });
      assert.equal(hop.traceId, TRACE_ID);
      assert.notEqual(hop.spanId, PARENT_SPAN);
      assert.equal(hop.flags, sampled);
    });
  }

  it('passes tracestate on with the trace it belongs to, and drops it when a new trace starts', async () => {
    const tracestate = 'vendor=abc,other=1';
    assert.equal((await traced({ traceparent: VALID_TRACEPARENT, tracestate })).upstream.tracestate, tracestate);
    assert.equal((await traced({ traceparent: `ff-${TRACE_ID}-${PARENT_SPAN}-01`, tracestate })).upstream.tracestate, undefined);
    assert.equal((await traced({ tracestate })).upstream.tracestate, undefined);
    assert.equal((await traced({ 'x-trace-id': TRACE_ID, tracestate })).upstream.tracestate, undefined);
  });

  it('starts a trace when none was sent, with the same id upstream and in the response', async () => {
    const hop = await traced({});
    assert.equal(hop.upstream['x-trace-id'], hop.traceId);
    assert.equal(hop.result.headers['x-trace-id'], hop.traceId);
  });

  it('keeps a safe X-Request-ID upstream and in the response', async () => {
    const requestId = 'order-7f3a.42:retry=1';
    const hop = await traced({ 'x-request-id': requestId });
    assert.equal(hop.upstream['x-request-id'], requestId);
    assert.equal(hop.result.headers['x-request-id'], requestId);
  });

  const unsafe: [reason: string, requestId: string][] = [
    ['spaces', 'order 7 retry'],
    ['200 characters', 'r'.repeat(200)],
    ['a double quote', 'order-"7"'],
  ];
  for (const [reason, requestId] of unsafe) {
    it(`replaces an X-Request-ID with ${reason} by a generated UUID`, async () => {
      const hop = await traced({ 'x-request-id': requestId });
      const generated = hop.result.headers['x-request-id'];
      assert.match(String(generated), UUID);
      assert.equal(hop.upstream['x-request-id'], generated);
    });
  }

  it('generates a different request id for each request', async () => {
    const first = await traced({});
    const second = await traced({});
    assert.match(String(first.result.headers['x-request-id']), UUID);
    assert.notEqual(first.result.headers['x-request-id'], second.result.headers['x-request-id']);
  });

  const errors: [status: number, code: string, path: string][] = [
    [404, 'route_not_found', '/nowhere'],
    [502, 'upstream_unavailable', '/gone/orders'],
  ];
  for (const [status, code, path] of errors) {
    it(`answers ${status} ${code} with the client's request id and trace id`, async () => {
      const headers = { 'x-request-id': `client-${status}`, traceparent: VALID_TRACEPARENT };
      const body = assertGatewayError(await send(gateway.url, { path, headers }), status, code);
      assert.equal(body.requestId, `client-${status}`);
      assert.equal(body.traceId, TRACE_ID);
    });

    it(`answers ${status} ${code} with generated ids when the client sent none`, async () => {
      const body = assertGatewayError(await send(gateway.url, { path }), status, code);
      assert.match(body.requestId, UUID);
      assert.match(body.traceId, /^[0-9a-f]{32}$/);
    });
  }
});

describe('traceIds: ids of a new trace from one draw', () => {
  it('gives every request its own UUID v4 request id and trace id, none derivable from another', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const ids = traceIds(undefined, undefined, undefined);
      assert.match(ids.requestId, UUID);
      assert.match(ids.w3cTraceId, /^[0-9a-f]{32}$/);
      assert.ok(!seen.has(ids.requestId) && !seen.has(ids.w3cTraceId), 'ids repeat');
      seen.add(ids.requestId).add(ids.w3cTraceId);
      assert.ok(!ids.traceparent.includes(ids.requestId.replaceAll('-', '').slice(0, 16)), 'the request id is not the trace');
    }
  });

  it("keeps the client's safe X-Request-ID", () => {
    assert.equal(traceIds('order-7', undefined, undefined).requestId, 'order-7');
  });
});
