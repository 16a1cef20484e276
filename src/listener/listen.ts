// Binding a listener, alone or as one of several processes on one address.
import { once } from 'node:events';
import type { AddressInfo, Server } from 'node:net';
import type { HostPort } from '../config/schema.ts';

/** `shared`: one of several processes on the same address (SO_REUSEPORT), each with its own socket. */
export async function listenOn(server: Server, address: HostPort, shared = false): Promise<AddressInfo> {
  const host = address.host === '' ? undefined : address.host;
  server.listen(shared ? { port: address.port, host, reusePort: true, exclusive: true } : { port: address.port, host });
  await once(server, 'listening');
  return server.address() as AddressInfo;
}
