// Everything one request accumulates on its way through the path; the access log reads it once at the end.
// A class with every field initialised keeps one object shape across requests.
import type { IncomingMessage } from 'node:http';
import type { Latch } from './latch.ts';
import type { Instance } from '../discovery/instance.ts';

export class RequestContext {
  readonly startedAt = performance.now();
  readonly method: string;
  /** path as matched and forwarded (normalised, without the query) */
  path: string;
  /** `?...` or empty */
  query: string;
  readonly host: string;
  readonly remoteAddr: string;
  readonly userAgent: string | null;
  readonly regionHeader: string | null;
  /** `http/1.1`, `http/1.0` or `h2`, as ALPN names them */
  readonly proto: 'http/1.1' | 'http/1.0' | 'h2';
  /** `https` on the HTTPS listener */
  readonly scheme: 'http' | 'https';
  /** the verified client certificate's subject (mutual TLS), e.g. `CN=billing,O=Acme` */
  clientSubject: string | null = null;
  requestId = '';
  traceId = '';
  traceparent = '';
  route: string | null = null;
  service: string | null = null;
  instance: Instance | null = null;
  tier: string | null = null;
  clientLocality: string | null = null;
  sticky = false;
  /** the instance id of each attempt, in order (their count is the log's `attempts`) */
  readonly tries: string[] = [];
  rateLimited = false;
  breaker: string | null = null;
  bytesIn = 0;
  bytesOut = 0;
  status = 0;
  /** an injected fault (route `fault`): abort, delay or delay+abort */
  fault: string | null = null;
  /** the gateway's error code when it answered itself */
  error: string | null = null;
  /** the upstream exchange, settled once the last attempt's verdict is in (the access line waits for it) */
  exchange: Latch | null = null;

  constructor(req: IncomingMessage, path: string, query: string, host: string) {
    this.method = req.method ?? 'GET';
    this.path = path;
    this.query = query;
    this.host = host;
    this.remoteAddr = req.socket.remoteAddress ?? '';
    const ua = req.headers['user-agent'];
    this.userAgent = ua ?? null;
    const region = req.headers['x-region-id'];
    this.regionHeader = typeof region === 'string' ? region : null;
    this.proto = req.httpVersionMajor === 2 ? 'h2' : req.httpVersionMinor === 0 ? 'http/1.0' : 'http/1.1';
    this.scheme = (req.socket as { encrypted?: boolean }).encrypted === true ? 'https' : 'http';
  }
}
