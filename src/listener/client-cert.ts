// The client certificate a mutual-TLS handshake verified: what routes may match on (`match.clientCert`) and what the
// access line names (`clientSubject`). Read once per connection; an unverified certificate is never believed.
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

export interface ClientIdentity {
  /** the subject as `CN=billing, O=Acme`, in the certificate's order */
  readonly subject: string;
  /** the subject's common name */
  readonly cn: string | undefined;
  /** DNS and URI subject alternative names (a URI is how SPIFFE ids travel) */
  readonly sans: readonly string[];
}

/** per TLS connection (for HTTP/2, its session's socket): undefined for none, null when none was verified */
const identities = new WeakMap<object, ClientIdentity | null>();

/** The connection the request came on: an HTTP/2 request's own socket object is made per stream. */
function connectionOf(req: IncomingMessage): TLSSocket {
  const stream = (req as { stream?: { session?: { socket?: TLSSocket } } }).stream;
  return stream?.session?.socket ?? (req.socket as TLSSocket);
}

export function verifiedClientIdentity(req: IncomingMessage): ClientIdentity | undefined {
  if ((req.socket as { encrypted?: boolean }).encrypted !== true) return undefined;
  const socket = connectionOf(req);
  let identity = identities.get(socket);
  if (identity === undefined) {
    identity = readIdentity(socket);
    identities.set(socket, identity);
  }
  return identity ?? undefined;
}

function readIdentity(socket: TLSSocket): ClientIdentity | null {
  // `authorized`: the chain was verified against gateway.tls.clientCa (with clientCert: optional a client may
  // present one that fails, and the handshake still completes)
  if (!socket.authorized) return null;
  const cert = socket.getPeerX509Certificate();
  if (cert === undefined) return null;
  const parts = cert.subject.split('\n');
  const cn = parts.find((part) => part.startsWith('CN='))?.slice(3);
  const sans = (cert.subjectAltName ?? '')
    .split(', ')
    .filter((name) => name.startsWith('DNS:') || name.startsWith('URI:'))
    .map((name) => name.slice(4));
  return { subject: parts.join(', '), cn, sans };
}
