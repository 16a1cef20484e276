// The HTTPS listener (`gateway.tls`): one TLS port for HTTP/1.1 and HTTP/2, chosen by ALPN. HTTP/1.1 over TLS is
// served by the very server the plain listener uses (same parser limits, errors, WebSocket upgrades, drain); a
// connection that chose `h2` is handed to the HTTP/2 side. Certificates are picked per handshake by SNI from a set
// that is replaced whole when its files change: handshakes from then on get the new certificate, open connections
// keep theirs.
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { GatewayConfig, ListenerTlsConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import { watchCertificates, type CertificateWatcher } from './certificate-watch.ts';
import type { CertificateSet } from './certificates.ts';
import { createH2Listener, type H2Listener } from './h2.ts';
import { attachProxyHandlers, proxyServerOptions } from './server.ts';

type Limits = GatewayConfig['limits'];

export class TlsListener {
  /** the listening server; HTTP/1.1 connections stay with it */
  readonly server: Server;
  readonly #h2: H2Listener | undefined;
  #certificates: CertificateSet;
  #watch: CertificateWatcher | undefined;

  constructor(
    tls: ListenerTlsConfig,
    limits: Limits,
    certificates: CertificateSet,
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    upgradeHandler: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
  ) {
    this.#certificates = certificates;
    const mutual = tls.clientCa !== undefined;
    this.server = createServer(
      {
        ...proxyServerOptions(limits),
        ...certificates.defaultOptions,
        minVersion: tls.minVersion,
        // Node waits 120 s for a handshake by default; a client gets as long as it has to send its request head
        handshakeTimeout: limits.headersTimeout,
        ALPNProtocols: tls.h2 ? ['h2', 'http/1.1'] : ['http/1.1'],
        SNICallback: (serverName, done) => done(null, this.#certificates.contextFor(serverName)),
        requestCert: mutual,
        // `optional`: a client certificate is verified when presented, and only a verified one is believed
        rejectUnauthorized: mutual && tls.clientCert === 'require',
      },
    );
    attachProxyHandlers(this.server, limits, handler, upgradeHandler);
    if (tls.h2) {
      const h2 = createH2Listener(tls.maxConcurrentStreams, limits, handler);
      this.#h2 = h2;
      // The HTTPS server's own listener serves HTTP/1.1; a connection that negotiated h2 goes to the HTTP/2 side.
      const [serveHttp1] = this.server.listeners('secureConnection') as ((socket: TLSSocket) => void)[];
      this.server.removeAllListeners('secureConnection');
      this.server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.alpnProtocol === 'h2') h2.server.emit('connection', socket);
        else serveHttp1!.call(this.server, socket);
      });
    }
  }

  get certificates(): CertificateSet {
    return this.#certificates;
  }

  /** New handshakes use `set`; connections already open keep the certificate they were made with. */
  set certificates(set: CertificateSet) {
    this.#certificates = set;
    // handshakes without SNI use the server's own context
    this.server.setSecureContext(set.defaultOptions);
  }

  /**
   * Watches the certificate files `tls` names (the running config's): a set that loads replaces the running one, one
   * that fails is logged and the running one serves on.
   */
  watchFiles(tls: ListenerTlsConfig, logger: Logger): void {
    this.#watch?.close();
    this.#watch = watchCertificates(tls, this.#certificates.files, {
      onLoaded: (set) => {
        this.certificates = set;
        const certificates = set.describe().map((c) => ({ entry: c.entry, subject: c.subject, validTo: c.validTo }));
        logger.info({ certificates }, 'certificates reloaded');
      },
      onError: (err) => logger.error({ err: err.message }, 'certificate reload failed; the running certificates keep serving'),
    });
  }

  /** HTTP/2 sessions open now. */
  get h2Sessions(): number {
    return this.#h2?.sessions.size ?? 0;
  }

  /** Stops accepting; HTTP/2 sessions get GOAWAY and end once their streams are done. */
  beginDrain(): void {
    this.#watch?.close();
    this.server.close();
    this.#h2?.closeGracefully();
    this.server.closeIdleConnections();
  }

  closeIdleConnections(): void {
    this.server.closeIdleConnections();
  }

  closeAllConnections(): void {
    this.server.closeAllConnections();
    this.#h2?.destroyAll();
  }
}

/**
 * `gateway.tls` as a reload may apply it: its certificate files (cert, key, sni, clientCa) change live; the listener
 * itself (address, versions, HTTP/2, client certificate mode, whether there is a clientCa, redirect) only on restart, like
 * gateway.listen. The running block is kept when nothing that applies live changed, so the certificates are not read
 * again.
 */
export function reloadedTls(
  running: ListenerTlsConfig | undefined,
  next: ListenerTlsConfig | undefined,
  warn: (message: string) => void,
): ListenerTlsConfig | undefined {
  if (running === undefined || next === undefined) {
    if (running !== next) warn('adding or removing gateway.tls applies after a restart');
    return running;
  }
  const { cert, key, sni, clientCa, ...listener } = next;
  const { cert: runningCert, key: runningKey, sni: runningSni, clientCa: runningCa, ...runningListener } = running;
  if (JSON.stringify(listener) !== JSON.stringify(runningListener)) warn('gateway.tls changes other than its certificate files apply after a restart');
  // Whether clients are asked for a certificate at all is fixed when the listener is built: only the CA file's
  // contents change live, not its presence.
  let ca = clientCa;
  if ((clientCa === undefined) !== (runningCa === undefined)) {
    warn('adding or removing gateway.tls.clientCa applies after a restart');
    ca = runningCa;
  }
  if (JSON.stringify([cert, key, sni, ca]) === JSON.stringify([runningCert, runningKey, runningSni, runningCa])) return running;
  return { ...running, cert, key, sni, clientCa: ca };
}
