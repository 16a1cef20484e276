// Simulated service instances for `zonegate demo`: one real HTTP server per static instance of the config,
// each answering JSON with its service, instance id and zone, and echoing the request id.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Config } from '../config/schema.ts';
import { staticSpecs } from '../discovery/static.ts';
import type { InstanceSpec } from '../discovery/instance.ts';

export interface DemoUpstreams {
  readonly instances: readonly InstanceSpec[];
  close(): Promise<void>;
}

function serve(instance: InstanceSpec): Server {
  return createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify({
        service: instance.service,
        instance: instance.id,
        zone: instance.zone,
        method: req.method,
        path: req.url,
        requestId: req.headers['x-request-id'] ?? null,
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
}

export async function startDemoUpstreams(config: Config): Promise<DemoUpstreams> {
  const instances = Object.entries(config.discovery.static).flatMap(([service, entries]) => staticSpecs(service, entries));
  const servers: Server[] = [];
  try {
    for (const instance of instances) {
      const server = serve(instance);
      servers.push(server);
      server.listen(instance.port, instance.host);
      await once(server, 'listening');
    }
  } catch (err) {
    for (const server of servers) server.close();
    throw err;
  }
  return {
    instances,
    async close() {
      await Promise.all(
        servers.map((server) => {
          server.closeAllConnections();
          return new Promise((resolve) => server.close(resolve));
        }),
      );
    },
  };
}
