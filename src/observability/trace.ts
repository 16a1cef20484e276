// Request and trace identity: X-Request-ID, X-Trace-ID and W3C traceparent.
// Trace and span ids come from a pooled random buffer: one randomFillSync serves hundreds of requests.
import { randomFillSync, randomUUID } from 'node:crypto';

const POOL_BYTES = 8192;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let poolOffset = POOL_BYTES;

/** `bytes` random bytes as lower-case hex. */
export function randomHex(bytes: number): string {
  if (poolOffset + bytes > POOL_BYTES) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const hex = pool.toString('hex', poolOffset, poolOffset + bytes);
  poolOffset += bytes;
  return hex;
}

/** What a client may send as X-Request-ID / X-Trace-ID: printable, no separators that break logs or headers. */
const SAFE_ID = /^[A-Za-z0-9._:@/+=-]{1,128}$/;
/**
 * version-traceid-parentid-flags. A later version than 00 may append fields (`-…`), which this version-00 hop
 * ignores, keeping only the sampled flag (W3C Trace Context §3.2.4); version ff is invalid.
 */
const TRACEPARENT = /^(?:00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})|(?!ff|00)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]([0-9a-f])(?:-.*)?)$/;
const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';
const HEX32 = /^[0-9a-f]{32}$/;

export interface TraceIds {
  readonly requestId: string;
  readonly traceId: string;
  /** the trace id inside traceparent (equal to traceId unless the client chose its own X-Trace-ID) */
  readonly w3cTraceId: string;
  /** the traceparent sent upstream: same trace, a new span id for this hop */
  readonly traceparent: string;
  /** the client's traceparent is continued; otherwise a new trace starts and its tracestate must not go upstream */
  readonly continuesParent: boolean;
}

function headerValue(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

export function safeId(value: string | string[] | undefined): string | undefined {
  const text = headerValue(value);
  return text !== undefined && SAFE_ID.test(text) ? text : undefined;
}

/**
 * Keeps what the client sent when it is valid and generates the rest. An invalid traceparent
 * (wrong version/shape, all-zero ids) starts a new trace, as the W3C spec requires.
 */
/** A version 4 UUID from 32 random hex digits (the version and variant digits set as RFC 9562 §5.4 says). */
function uuidOf(hex: string): string {
  const variant = VARIANT_DIGITS[parseInt(hex[16]!, 16) & 3]!;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}
const VARIANT_DIGITS = ['8', '9', 'a', 'b'];

export function traceIds(
  requestIdHeader: string | string[] | undefined,
  traceIdHeader: string | string[] | undefined,
  traceparentHeader: string | string[] | undefined,
): TraceIds {
  let requestId = safeId(requestIdHeader);
  const clientTraceId = safeId(traceIdHeader);
  const traceparent = headerValue(traceparentHeader);
  const parent = traceparent === undefined ? null : TRACEPARENT.exec(traceparent);
  // a later version's trace and parent ids, and of its flags only `sampled`
  const parentTraceId = parent?.[1] ?? parent?.[4];
  const parentSpanId = parent?.[2] ?? parent?.[5];
  const continuesParent = parentTraceId !== undefined && parentTraceId !== ZERO_TRACE && parentSpanId !== ZERO_SPAN;
  let w3cTraceId: string;
  let spanId: string;
  let flags = '01';
  if (continuesParent) {
    w3cTraceId = parentTraceId;
    flags = parent![3] ?? (parseInt(parent![6]!, 16) & 1 ? '01' : '00');
    spanId = randomHex(8);
  } else if (clientTraceId !== undefined && HEX32.test(clientTraceId) && clientTraceId !== ZERO_TRACE) {
    w3cTraceId = clientTraceId;
    spanId = randomHex(8);
  } else {
    // A new trace, the common case: trace id, span id and request id from one draw of the random pool.
    const ids = randomHex(requestId === undefined ? 40 : 24);
    w3cTraceId = ids.slice(0, 32);
    spanId = ids.slice(32, 48);
    requestId ??= uuidOf(ids.slice(48));
  }
  return {
    requestId: requestId ?? randomUUID(),
    traceId: clientTraceId ?? w3cTraceId,
    w3cTraceId,
    traceparent: `00-${w3cTraceId}-${spanId}-${flags}`,
    continuesParent,
  };
}
