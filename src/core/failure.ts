// What can go wrong with one try of an upstream exchange, in one vocabulary shared by the relay (which
// observes it), the retry state (which decides on it) and outlier detection (which judges the instance by it).

export type FailureKind =
  /** no connection could be made: nothing was sent, so any request may go elsewhere */
  | 'connect-failure'
  /** the connection broke before a response head */
  | 'reset'
  /** no response head within the per-try timeout */
  | 'timeout'
  /** the instance answered with something the gateway cannot relay */
  | 'bad-response'
  /** an answered status the exchange chose not to pass on (another try follows) */
  | 'status'
  /** every connection to the instance was busy and its queue full or too slow: nothing was sent */
  | 'overflow'
  | 'client-closed';

export class UpstreamFailure extends Error {
  readonly kind: FailureKind;
  /** the upstream's status, for kind `status` */
  readonly status: number | undefined;
  constructor(kind: FailureKind, cause?: unknown, status?: number) {
    super(cause instanceof Error ? cause.message : status === undefined ? kind : `${kind} ${status}`, { cause });
    this.name = 'UpstreamFailure';
    this.kind = kind;
    this.status = status;
  }
}

const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);
// A connection that does not complete in time is a host that cannot be reached, as for Envoy's `connect-failure`
// and nginx's next upstream: retried like a refusal, and 502 once no instance is left (504 is the route's deadline).
const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ETIMEDOUT',
]);
const RESET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE', 'UND_ERR_CLOSED', 'UND_ERR_DESTROYED']);

export function classifyFailure(err: unknown): UpstreamFailure {
  if (err instanceof UpstreamFailure) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    if (TIMEOUT_CODES.has(code)) return new UpstreamFailure('timeout', err);
    if (CONNECT_CODES.has(code)) return new UpstreamFailure('connect-failure', err);
    if (RESET_CODES.has(code)) return new UpstreamFailure('reset', err);
  }
  return new UpstreamFailure('bad-response', err);
}

/**
 * How a try's outcome speaks of its instance (Envoy's split of external and local origin errors): an answer
 * (good or a failure status), a failure of the connection or the wait (local origin), or nothing at all
 * (the client left, the gateway refused the body, the instance was never reached for lack of a connection).
 */
export type Verdict = 'success' | 'failure-status' | 'connect-failure' | 'local-failure' | 'none';

export function verdictOf(failure: UpstreamFailure, failureStatuses: ReadonlySet<number>): Verdict {
  switch (failure.kind) {
    case 'connect-failure':
      return 'connect-failure';
    case 'reset':
    case 'timeout':
    case 'bad-response':
      return 'local-failure';
    case 'status':
      return failureStatuses.has(failure.status!) ? 'failure-status' : 'success';
    default:
      return 'none';
  }
}
