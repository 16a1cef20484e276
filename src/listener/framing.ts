// Request framing the gateway does not forward: what llhttp accepts but a proxy must not pass on as it is.
import type { IncomingMessage } from 'node:http';
import type { GatewayErrorCode } from '../core/errors.ts';

export interface FramingRefusal {
  readonly code: GatewayErrorCode;
  readonly message: string;
}

/** Node's own test for the expectation it hands to `checkContinue`. */
export const EXPECTS_CONTINUE = /(?:^|\W)100-continue(?:$|\W)/i;

/**
 * A transfer coding other than chunked (`gzip, chunked`): llhttp removes only the chunking, and the rest would
 * reach the instance unlabelled once the hop-by-hop Transfer-Encoding is dropped (RFC 9112 §6.1: 501, as nginx
 * answers). An expectation other than 100-continue, which nothing on the way can meet (RFC 9110 §10.1.1: 417).
 */
export function refusedFraming(req: IncomingMessage): FramingRefusal | undefined {
  const codings = req.headers['transfer-encoding'];
  if (codings !== undefined && !isChunkedOnly(codings)) {
    return { code: 'not_implemented', message: `transfer coding "${codings.slice(0, 64)}" is not supported; only chunked is` };
  }
  const expect = req.headers.expect;
  if (expect !== undefined && !EXPECTS_CONTINUE.test(expect)) {
    return { code: 'expectation_failed', message: `expectation "${expect.slice(0, 64)}" cannot be met; only 100-continue can` };
  }
  return undefined;
}

/** `chunked` and nothing else: the one transfer coding every HTTP/1.1 hop decodes and re-encodes itself. */
export function isChunkedOnly(codings: string): boolean {
  return codings.length === 7 ? codings.toLowerCase() === 'chunked' : codings.trim().toLowerCase() === 'chunked';
}
