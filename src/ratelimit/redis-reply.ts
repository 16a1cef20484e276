// The token script's reply, read at the boundary: nothing Redis (or a proxy in front of it, or a server that
// only speaks its protocol) sends back is trusted until it has the shape the script returns.
import { z } from 'zod';

/** What the script answered for one bucket. */
export interface BucketGrant {
  /** requests granted: 0 … wanted */
  readonly granted: number;
  /** tokens left in the shared bucket after the grant (fractional) */
  readonly tokensLeft: number;
  /** milliseconds until the bucket holds one request's cost again; 0 when it does now */
  readonly waitMs: number;
}

/** Why one bucket could not be decided while the others of its call were (the key is not a bucket). */
export class BucketError extends Error {
  /** The key is not in the message: it may hold a client's header value (an API key, say). */
  constructor(reason: string) {
    super(`redis could not use a bucket key: ${reason}`);
    this.name = 'BucketError';
  }
}

/** The reply does not have the script's shape: handled as a failed call (the requests get the fallback). */
export class MalformedReplyError extends Error {
  constructor(reason: string) {
    super(`redis sent a rate-limit reply the gateway cannot read: ${reason}`);
    this.name = 'MalformedReplyError';
  }
}

/** Tokens left: a decimal string (Redis truncates Lua numbers to integers, so the script formats it). */
const tokensLeft = z.string().regex(/^-?\d+(?:\.\d+)?(?:e[-+]?\d+)?$/i).transform(Number).pipe(z.number().min(0));
const grantEntry = z.tuple([z.number().int().min(0), tokensLeft, z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)]);
/** -1 and the error text: the key holds another type */
const bucketErrorEntry = z.tuple([z.literal(-1), z.string(), z.unknown()]);
const replyShape = z.array(z.union([z.number(), z.string()]));

/** Reads one call's reply for `requests` (three entries per bucket, in order); throws MalformedReplyError when it is not that. */
export function parseBucketReplies(reply: unknown, requests: readonly { readonly wanted: number }[]): (BucketGrant | BucketError)[] {
  const entries = replyShape.safeParse(reply);
  if (!entries.success) throw new MalformedReplyError(`expected an array of numbers and strings, got ${describe(reply)}`);
  if (entries.data.length !== 3 * requests.length) {
    throw new MalformedReplyError(`expected ${3 * requests.length} entries for ${requests.length} bucket(s), got ${entries.data.length}`);
  }
  return requests.map((request, index) => {
    const triple = entries.data.slice(3 * index, 3 * index + 3);
    const failed = bucketErrorEntry.safeParse(triple);
    if (failed.success) return new BucketError(failed.data[1]);
    const grant = grantEntry.safeParse(triple);
    if (!grant.success || grant.data[0] > request.wanted) {
      throw new MalformedReplyError(`bucket ${index + 1}: expected [granted 0…${request.wanted}, tokens left, µs], got ${describe(triple)}`);
    }
    const [granted, left, waitUs] = grant.data;
    return { granted, tokensLeft: left, waitMs: waitUs / 1000 };
  });
}

/** A short, bounded description for a log line (a reply may be huge). */
function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
