// Which peers may speak for someone else (X-Forwarded-*, Forwarded, and X-Region-ID under `peers`).
// The verdict is cached per socket: keep-alive connections pay for the CIDR lookup once.
import type { IncomingMessage } from 'node:http';
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';

const MAPPED_V4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** `::ffff:10.0.0.1` → `10.0.0.1`, so IPv4 CIDRs match IPv4 clients on dual-stack listeners. */
export function canonicalAddress(address: string): string {
  const mapped = MAPPED_V4.exec(address);
  return mapped ? mapped[1]! : address;
}

export class TrustedPeers {
  readonly #list = new BlockList();
  readonly #empty: boolean;
  readonly #bySocket = new WeakMap<Socket, boolean>();

  constructor(cidrs: readonly string[]) {
    this.#empty = cidrs.length === 0;
    for (const cidr of cidrs) {
      const [address, bits] = cidr.split('/') as [string, string | undefined];
      const type = isIPv4(address) ? 'ipv4' : 'ipv6';
      if (bits === undefined) this.#list.addAddress(address, type);
      else this.#list.addSubnet(address, Number(bits), type);
    }
  }

  isTrusted(address: string): boolean {
    if (this.#empty || address === '') return false;
    const canonical = canonicalAddress(address);
    if (isIPv4(canonical)) return this.#list.check(canonical, 'ipv4');
    return isIPv6(canonical) && this.#list.check(canonical, 'ipv6');
  }

  isTrustedSocket(socket: Socket): boolean {
    let trusted = this.#bySocket.get(socket);
    if (trusted === undefined) {
      trusted = this.isTrusted(socket.remoteAddress ?? '');
      this.#bySocket.set(socket, trusted);
    }
    return trusted;
  }
}

/**
 * The client's address after `trustedProxies`: a trusted peer speaks for the request, so walk its
 * X-Forwarded-For from the right (the entries trusted proxies appended) to the first hop that is not
 * a trusted proxy. An untrusted peer is the client, whatever it claims.
 */
export function clientAddress(req: IncomingMessage, trusted: TrustedPeers): string {
  const peer = canonicalAddress(req.socket.remoteAddress ?? '');
  if (!trusted.isTrustedSocket(req.socket)) return peer;
  const header = req.headers['x-forwarded-for'];
  if (header === undefined) return peer;
  const hops = (Array.isArray(header) ? header.join(',') : header).split(',');
  let nearest = peer;
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = canonicalAddress(hops[i]!.trim());
    if (hop === '') continue;
    if (!trusted.isTrusted(hop)) return hop;
    nearest = hop;
  }
  // every hop is a trusted proxy: the one farthest from us is the best guess at the client
  return nearest;
}
