// The benchmark's backend: answers every request with a small fixed JSON body, so the numbers
// measure the proxy in front of it, not the backend.
//   node bench/upstream.ts <port> [port ...]
// One process can listen on several ports: the benchmark registers each port as its own instance
// while keeping a single event loop on the load generator's CPU.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

const ports = process.argv.slice(2).map(Number);
if (ports.length === 0 || ports.some((port) => !Number.isInteger(port) || port < 0 || port > 65535)) {
  console.error('usage: node bench/upstream.ts <port> [port ...]');
  process.exit(2);
}

const body = Buffer.from(
  JSON.stringify({ ok: true, service: 'bench', message: 'hello from the zonegate benchmark upstream', items: [1, 2, 3] }),
);
const responseHeaders = { 'content-type': 'application/json', 'content-length': String(body.length) };

function answer(req: IncomingMessage, res: ServerResponse): void {
  // Drain any request body so the connection stays reusable.
  req.resume();
  res.writeHead(200, responseHeaders);
  res.end(body);
}

function listen(port: number): Promise<void> {
  const server = createServer(answer);
  // Outlive the proxies' pooled idle connections (undici closes its own after 4 s), so a proxy never
  // reuses a socket this side has just closed.
  server.keepAliveTimeout = 65_000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
}

await Promise.all(ports.map(listen));
console.log('ready');
