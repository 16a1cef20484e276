// The library a team would reach for first: http-proxy-3 in front of the same upstream, with a keep-alive agent
// (without one it opens a connection per request and measures the kernel, not the proxy). No routing, logging or
// policy: `zonegate ÷ http-proxy-3` in the benchmark is what zonegate's whole feature set costs next to it.
//   node bench/http-proxy-forwarder.ts <listenPort> <upstreamPort>
import { Agent, createServer } from 'node:http';
import { createProxyServer } from 'http-proxy-3';

const [listenPort, upstreamPort] = process.argv.slice(2).map(Number);
if (!Number.isInteger(listenPort) || !Number.isInteger(upstreamPort)) {
  console.error('usage: node bench/http-proxy-forwarder.ts <listenPort> <upstreamPort>');
  process.exit(2);
}

// Same cap as the gateway's default upstream.maxConnections.
const agent = new Agent({ keepAlive: true, maxSockets: 128 });
const proxy = createProxyServer({ target: `http://127.0.0.1:${upstreamPort}`, agent, xfwd: true });
proxy.on('error', (_error, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end('bad gateway\n');
  else res.destroy();
});

createServer({ keepAliveTimeout: 65_000 }, (req, res) => proxy.web(req, res)).listen(listenPort, '127.0.0.1', () => console.log('ready'));
