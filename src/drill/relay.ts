// A TCP relay on loopback in front of a dependency (Consul, Redis): the drill points the gateway at it, and
// cutting it makes the dependency unavailable to the gateway alone (connections reset, new ones refused) without
// touching the dependency itself, which other clients may share.
import { once } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';

export interface Relay {
  /** the relay's own port on 127.0.0.1 */
  readonly port: number;
  /** resets every relayed connection and refuses new ones */
  cut(): Promise<void>;
  restore(): Promise<void>;
  close(): Promise<void>;
}

export async function startRelay(host: string, port: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  const track = (socket: Socket): void => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  };
  const server: Server = createServer((client) => {
    const upstream = connect(port, host);
    track(client);
    track(upstream);
    client.pipe(upstream).pipe(client);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const own = (server.address() as { port: number }).port;
  let down = false;
  const cut = async (): Promise<void> => {
    if (down) return;
    down = true;
    const closed = new Promise((resolve) => server.close(resolve));
    for (const socket of sockets) socket.resetAndDestroy();
    await closed;
  };
  return {
    port: own,
    cut,
    async restore() {
      if (!down) return;
      down = false;
      server.listen(own, '127.0.0.1');
      await once(server, 'listening');
    },
    close: cut,
  };
}
