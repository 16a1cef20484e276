// The access line is serialised by hand: it must parse to exactly what JSON.stringify of the same fields gives,
// whatever a client puts in the strings it controls (path, user agent, region header, ids).
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import type { Instance } from '../../src/discovery/instance.ts';
import { RequestContext } from '../../src/core/context.ts';
import { accessLogMembers, type AccessLogLine } from '../../src/observability/access-log.ts';
import { jsonString } from '../../src/observability/logger.ts';

function context(fields: { path: string; userAgent?: string; region?: string; remoteAddr?: string }): RequestContext {
  const headers: Record<string, string> = {};
  if (fields.userAgent !== undefined) headers['user-agent'] = fields.userAgent;
  if (fields.region !== undefined) headers['x-region-id'] = fields.region;
  const req = { method: 'GET', headers, socket: { remoteAddress: fields.remoteAddr ?? '127.0.0.1' } } as unknown as IncomingMessage;
  return new RequestContext(req, fields.path, '', 'example.test');
}

function parse(ctx: RequestContext): AccessLogLine {
  return JSON.parse(`{${accessLogMembers(ctx)}}`) as AccessLogLine;
}

const TRICKY = ['plain', 'quote " inside', 'back\\slash', 'new\nline', 'tab\tand\u0001control', 'del\u007f', 'é ü 中文', '😀 pair', 'lone \ud800 high', 'lone \udc00 low', ''];

describe('access line serialisation', () => {
  it('jsonString matches JSON.stringify for every kind of string', () => {
    for (const text of TRICKY) assert.equal(jsonString(text), JSON.stringify(text), JSON.stringify(text));
  });

  it('an unrouted request: nulls and defaults, every field present in order', () => {
    const ctx = context({ path: '/nowhere' });
    ctx.requestId = 'r-1';
    ctx.traceId = 't-1';
    ctx.status = 404;
    ctx.error = 'route_not_found';
    const line = parse(ctx);
    assert.deepEqual(Object.keys(line), [
      'reqId', 'traceId', 'method', 'path', 'status', 'durationMs', 'route', 'service', 'upstream', 'upstreamAddr', 'tier',
      'clientLocality', 'regionHeader', 'sticky', 'attempts', 'tries', 'rateLimited', 'breaker', 'bytesIn', 'bytesOut',
      'remoteAddr', 'userAgent', 'error', 'proto', 'scheme', 'clientSubject', 'fault',
    ]);
    assert.equal(line.status, 404);
    assert.equal(line.route, null);
    assert.equal(line.upstream, null);
    assert.equal(line.userAgent, null);
    assert.equal(line.regionHeader, null);
    assert.deepEqual(line.tries, []);
    assert.equal(line.attempts, 0);
    assert.equal(line.error, 'route_not_found');
    assert.ok(typeof line.durationMs === 'number' && line.durationMs >= 0);
  });

  it('client-controlled strings round-trip exactly, proxied request fields are filled', () => {
    for (const text of TRICKY) {
      const ctx = context({ path: `/p/${text}`, userAgent: text, region: text });
      // ids are never client text as such: a client's X-Request-ID / X-Trace-ID is kept only when it passes SAFE_ID
      ctx.requestId = 'order-7';
      ctx.traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
      ctx.route = 'orders';
      ctx.service = 'order-service';
      ctx.instance = { id: `node/${text}@dc1`, address: '10.0.0.1:8080' } as Instance;
      ctx.tier = 'zone';
      ctx.clientLocality = 'sh-a';
      ctx.sticky = true;
      ctx.tries.push(`node/${text}@dc1`, 'b');
      ctx.rateLimited = false;
      ctx.breaker = 'closed';
      ctx.bytesIn = 12;
      ctx.bytesOut = 3456;
      ctx.status = 200;
      const line = parse(ctx);
      const expected = {
        reqId: 'order-7', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', method: 'GET', path: `/p/${text}`, status: 200, durationMs: line.durationMs,
        route: 'orders', service: 'order-service', upstream: `node/${text}@dc1`, upstreamAddr: '10.0.0.1:8080', tier: 'zone',
        clientLocality: 'sh-a', regionHeader: text, sticky: true, attempts: 2, tries: [`node/${text}@dc1`, 'b'],
        rateLimited: false, breaker: 'closed', bytesIn: 12, bytesOut: 3456, remoteAddr: '127.0.0.1', userAgent: text, error: null,
        proto: 'http/1.1', scheme: 'http', clientSubject: null, fault: null,
      };
      assert.equal(`{${accessLogMembers(ctx).replace(/"durationMs":[^,]+/, `"durationMs":${line.durationMs}`)}}`, JSON.stringify(expected));
    }
  });
});
