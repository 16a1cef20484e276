// The yardstick for the gateway: the least a correct reverse proxy must do (one pooled undici
// dispatch per request, hop-by-hop headers removed, body streamed both ways), with no routing,
// logging or policy. `zonegate ÷ bare` in the benchmark is the cost of everything else.
//   node bench/bare-forwarder.ts <listenPort> <upstreamPort>
import { createServer } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { endToEndHeaders } from './hop-by-hop.ts';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(upstreamPort)) {
  console.error('usage: node bench/bare-forwarder.ts <listenPort> <upstreamPort>');
  process.exit(2);
}

// Same cap as the gateway's default upstream.maxConnections, so both pools behave alike.
const pool = new Pool(`http://127.0.0.1:${upstreamPort}`, { connections: 128, pipelining: 1 });

createServer({ keepAliveTimeout: 65_000 }, (req, res) => {
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined;
  pool.dispatch(
    { path: req.url ?? '/', method: req.method as Dispatcher.HttpMethod, headers: endToEndHeaders(req.headers), body: hasBody ? req : null },
    {
      onRequestStart(controller) {
        res.once('close', () => { if (!res.writableFinished) controller.abort(new Error('client went away')); });
      },
      onResponseStart(_controller, statusCode, headers) { res.writeHead(statusCode, endToEndHeaders(headers)); },
      onResponseData(controller, chunk) {
        if (!res.write(chunk)) { controller.pause(); res.once('drain', () => controller.resume()); }
      },
      onResponseEnd() { res.end(); },
      onResponseError(_controller, error) {
        if (res.headersSent) res.destroy(error);
        else res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
      },
    },
  );
}).listen(listenPort, '127.0.0.1', () => console.log('ready'));
