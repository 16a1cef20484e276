// The bare forwarder plus only the per-request work DESIGN.md asks of any gateway, each done the plainest cheap way:
// request and trace ids (kept when sent, else generated), the eight headers added upstream (X-Request-ID,
// X-Trace-ID, traceparent, Via, X-Forwarded-For/-Proto/-Host; Forwarded is opt-in), the three added downstream, and one
// access line per request (built by hand, through zonegate's batched writer). No routing, locality, balancing, breaker, retry, rate limit
// or metrics. `contract ÷ bare` in the benchmark is what the contract costs on Node and undici, whoever implements
// it; `zonegate ÷ contract` is what zonegate's own machinery adds.
//   node bench/contract-forwarder.ts <listenPort> <upstreamPort>   (access lines on stdout)
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { createLogger, jsonString, writeInfoMembers } from '../src/observability/logger.ts';
import { randomHex } from '../src/observability/trace.ts';
import { endToEndHeaders } from './hop-by-hop.ts';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(upstreamPort)) {
  console.error('usage: node bench/contract-forwarder.ts <listenPort> <upstreamPort>');
  process.exit(2);
}

// Same cap as the gateway's default upstream.maxConnections, so every pool behaves alike.
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, pipelining: 1 });
const logger = createLogger();
const upstreamAddr = `127.0.0.1:${upstreamPort}`;
const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-([0-9a-f]{2})$/;

function ids(req: IncomingMessage): { requestId: string; traceId: string; traceparent: string } {
  const sent = req.headers['x-request-id'];
  const requestId = typeof sent === 'string' && sent !== '' ? sent : randomUUID();
  const sentParent = req.headers.traceparent;
  const parent = TRACEPARENT.exec(typeof sentParent === 'string' ? sentParent : '');
  // zonegate's pooled random bytes: crypto.randomBytes costs an OpenSSL DRBG call each time
  const traceId = parent?.[1] ?? randomHex(16);
  return { requestId, traceId, traceparent: `00-${traceId}-${randomHex(8)}-${parent?.[2] ?? '01'}` };
}

createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const started = performance.now();
  const { requestId, traceId, traceparent } = ids(req);
  const client = req.socket.remoteAddress ?? '';
  const host = req.headers.host ?? '';
  const headers = endToEndHeaders(req.headers);
  headers['x-request-id'] = requestId;
  headers['x-trace-id'] = traceId;
  headers.traceparent = traceparent;
  headers.via = '1.1 zonegate';
  headers['x-forwarded-for'] = client;
  headers['x-forwarded-proto'] = 'http';
  headers['x-forwarded-host'] = host;
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  let bytesOut = 0;
  res.once('close', () => {
    // Built by hand, as zonegate builds its own line (JSON.stringify of a fresh object costs more).
    const durationMs = Math.round((performance.now() - started) * 1000) / 1000;
    const userAgent = req.headers['user-agent'];
    writeInfoMembers(
      logger,
      `"reqId":${jsonString(requestId)},"traceId":"${traceId}","method":"${req.method}","path":${jsonString(req.url ?? '/')},` +
        `"status":${res.statusCode},"durationMs":${durationMs},"route":null,"service":null,"upstream":null,` +
        `"upstreamAddr":"${upstreamAddr}","tier":null,"clientLocality":null,"regionHeader":null,"sticky":false,"attempts":1,` +
        `"rateLimited":false,"breaker":null,"bytesIn":${Number(req.headers['content-length'] ?? 0)},"bytesOut":${bytesOut},` +
        `"remoteAddr":"${client}","userAgent":${userAgent === undefined ? 'null' : jsonString(userAgent)},"error":null`,
      'access',
    );
  });
  pool.dispatch(
    { path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers, body: hasBody ? req : null },
    {
      onRequestStart(controller) {
        res.once('close', () => { if (!res.writableFinished) controller.abort(new Error('client went away')); });
      },
      onResponseStart(_controller, statusCode, responseHeaders) {
        const head = endToEndHeaders(responseHeaders);
        head['x-request-id'] = requestId;
        head['x-trace-id'] = traceId;
        head.via = '1.1 zonegate';
        res.writeHead(statusCode, head);
      },
      onResponseData(controller, chunk) {
        bytesOut += chunk.length;
        if (!res.write(chunk)) { controller.pause(); res.once('drain', () => controller.resume()); }
      },
      onResponseEnd() { res.end(); },
      onResponseError(_controller, error) {
        if (res.headersSent) res.destroy(error);
        else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
      },
    },
  );
}).listen(listenPort, '127.0.0.1');
