// The proxy's listeners as one: the plain HTTP/1.1 listener (with h2c, or answering with a redirect to HTTPS) and,
// with `gateway.tls`, the HTTPS listener. Bound together at start, drained together at stop; the gateway only wires
// them to the pipeline.
import { once } from 'node:events';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { GatewayConfig, ListenerTlsConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { loadCertificateSet, type CertificateSet } from './certificates.ts';
import { acceptH2c, type H2Listener } from './h2.ts';
import { listenOn } from './listen.ts';
import { httpsRedirect } from './redirect.ts';
import { createProxyServer } from './server.ts';
import { TlsListener } from './tls.ts';

type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;
type UpgradeHandler = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

/** while draining, how often connections that went idle are closed */
const DRAIN_SWEEP_MS = 50;

export class ProxyListeners {
  readonly #plain: Server;
  readonly #tls: TlsListener | undefined;
  readonly #h2c: H2Listener | undefined;
  #plainAddress: AddressInfo | undefined;
  #tlsAddress: AddressInfo | undefined;

  constructor(gateway: GatewayConfig, handle: RequestHandler, handleUpgrade: UpgradeHandler) {
    const tls = gateway.tls;
    if (tls !== undefined) this.#tls = new TlsListener(tls, gateway.limits, loadCertificateSet(tls), handle, handleUpgrade);
    const redirect = tls?.redirectPlain === true ? httpsRedirect(() => this.#tlsAddress?.port ?? tls.listen.port) : undefined;
    this.#plain = createProxyServer(gateway.limits, redirect?.handle ?? handle, redirect?.handleUpgrade ?? handleUpgrade);
    if (gateway.h2c) this.#h2c = acceptH2c(this.#plain, gateway.limits, tls?.maxConcurrentStreams ?? 100, redirect?.handle ?? handle);
  }

  /** Binds the plain listener, then the HTTPS one, whose certificate files are watched from then on. */
  async listen(gateway: GatewayConfig, shared: boolean, logger: Logger): Promise<void> {
    this.#plainAddress = await listenOn(this.#plain, gateway.listen, shared);
    if (this.#tls === undefined) return;
    this.#tlsAddress = await listenOn(this.#tls.server, gateway.tls!.listen, shared);
    this.#tls.watchFiles(gateway.tls!, logger);
  }

  /** The plain listener's bound address (the real port when the config asked for port 0). */
  get address(): AddressInfo | undefined {
    return this.#plainAddress;
  }

  /** The HTTPS listener's bound address; undefined without `gateway.tls`. */
  get tlsAddress(): AddressInfo | undefined {
    return this.#tlsAddress;
  }

  get certificates(): CertificateSet | undefined {
    return this.#tls?.certificates;
  }

  /**
   * The certificates a reload's `tls` asks for, loaded (a file that cannot be read throws, before the reload touches
   * anything); undefined when the HTTPS listener keeps its own (unchanged settings, or no HTTPS listener).
   */
  certificatesFor(tls: ListenerTlsConfig | undefined, previous: ListenerTlsConfig | undefined): CertificateSet | undefined {
    return this.#tls !== undefined && tls !== previous ? loadCertificateSet(tls!) : undefined;
  }

  /** Handshakes from now on get `certificates`, whose files are watched instead of the previous ones. */
  useCertificates(certificates: CertificateSet, tls: ListenerTlsConfig, logger: Logger): void {
    this.#tls!.certificates = certificates;
    this.#tls!.watchFiles(tls, logger);
  }

  /**
   * Stops accepting and closes each connection as it goes idle (the pipeline's drain has begun: responses say
   * `Connection: close`), every remaining one after `drainTimeout`, when `onTimeout` is told. Resolves once every
   * listener has closed.
   */
  async drain(drainTimeout: number, onTimeout: () => void): Promise<void> {
    const plain = this.#plain;
    const tls = this.#tls;
    const closed = Promise.all([once(plain, 'close'), ...(tls?.server.listening ? [once(tls.server, 'close')] : [])]);
    tls?.beginDrain();
    this.#h2c?.closeGracefully();
    plain.close();
    // a keep-alive connection whose response began before the drain closes as soon as it goes idle, not at its timeout
    plain.closeIdleConnections();
    const sweep = setInterval(() => {
      plain.closeIdleConnections();
      tls?.closeIdleConnections();
    }, DRAIN_SWEEP_MS);
    const deadline = setTimeout(() => {
      plain.closeAllConnections();
      tls?.closeAllConnections();
      this.#h2c?.destroyAll();
      onTimeout();
    }, drainTimeout);
    try {
      await closed;
    } finally {
      clearInterval(sweep);
      clearTimeout(deadline);
    }
  }
}
