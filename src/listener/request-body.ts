// A request body is received before an upstream is picked (nginx's `proxy_request_buffering`): up to a buffer size
// it is read whole into memory, so a slow or stalled upload costs the gateway memory and never an upstream
// connection; past the buffer size the rest streams behind what was read. An upload that sends nothing for the idle
// timeout, breaks its framing, or outgrows `maxBodyBytes` is answered here, before anything reaches an instance.
import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { RequestContext } from '../core/context.ts';

export interface BodyLimits {
  /** bytes read whole before an upstream is picked */
  readonly bufferBytes: number;
  /** the largest body accepted */
  readonly maxBytes: number;
  /** longest wait for the next byte while the gateway is reading (ms) */
  readonly idleTimeout: number;
}

/** Why a body was not received: the gateway error code it is answered with, and a sentence for the client. */
export interface BodyRefusal {
  readonly code: 'request_timeout' | 'bad_request' | 'body_too_large';
  readonly message: string;
}

export type ReceivedBody =
  /** the whole body, in memory */
  | { readonly kind: 'whole'; readonly body: Buffer }
  /** the buffer filled: what was read, then the rest as the client sends it */
  | { readonly kind: 'streaming'; readonly body: Readable }
  | { readonly kind: 'refused'; readonly refusal: BodyRefusal }
  /** the client went away before its body was in */
  | { readonly kind: 'client-closed' };

/**
 * Told once the body is streaming (its head is with an instance) that it cannot be completed: refused (answered to
 * the client if it still can be), or null when the client went away. Returns the error that ends the upstream
 * request, one that does not count against the instance.
 */
export type LateRefusal = (refusal: BodyRefusal | null) => Error;

const IDLE: BodyRefusal = { code: 'request_timeout', message: 'the request body stalled: nothing arrived within the body idle timeout' };
const TOO_LARGE: BodyRefusal = { code: 'body_too_large', message: 'the request body is larger than the gateway accepts' };

/** Refusals the listener saw (a framing error, its request timeout) before the body was being read. */
const pendingRefusals = new WeakMap<IncomingMessage, BodyRefusal>();
const activeReaders = new WeakMap<IncomingMessage, BodyReader>();

/**
 * The listener's parser gave up on `req`'s body (malformed chunked framing) or its request timeout expired: the
 * reader answers it (at once if it is reading, else as soon as it starts). Node's parser reports such errors only
 * to the connection, never to the request, whose body would otherwise wait for bytes that will never be parsed.
 */
export function interruptBody(req: IncomingMessage, refusal: BodyRefusal): void {
  const reader = activeReaders.get(req);
  if (reader) reader.refuse(refusal);
  else pendingRefusals.set(req, refusal);
}

/** Reads `req`'s body as `limits` say; `bytesIn` counts what arrived. */
export function receiveBody(req: IncomingMessage, ctx: RequestContext, limits: BodyLimits, late: LateRefusal): Promise<ReceivedBody> {
  const pending = pendingRefusals.get(req);
  if (pending !== undefined) return Promise.resolve({ kind: 'refused', refusal: pending });
  if (req.complete && req.readableEnded) return Promise.resolve({ kind: 'whole', body: Buffer.alloc(0) });
  // gone while the request waited for admission (a rate limit in Redis): its close has been and gone
  if (req.destroyed && !req.complete) return Promise.resolve({ kind: 'client-closed' });
  const { promise, resolve } = Promise.withResolvers<ReceivedBody>();
  const reader = new BodyReader(req, ctx, limits, resolve, late);
  activeReaders.set(req, reader);
  reader.start();
  return promise;
}

class BodyReader {
  readonly #req: IncomingMessage;
  readonly #ctx: RequestContext;
  readonly #limits: BodyLimits;
  readonly #settle: (body: ReceivedBody) => void;
  readonly #late: LateRefusal;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** set once the buffer has filled and the body is handed on as a stream */
  #stream: Readable | undefined;
  #idle: NodeJS.Timeout | undefined;
  /** the upstream takes no bytes now (backpressure): the client is not idle, the gateway is not reading */
  #paused = false;
  #over = false;

  constructor(req: IncomingMessage, ctx: RequestContext, limits: BodyLimits, settle: (body: ReceivedBody) => void, late: LateRefusal) {
    this.#req = req;
    this.#ctx = ctx;
    this.#limits = limits;
    this.#settle = settle;
    this.#late = late;
  }

  start(): void {
    const req = this.#req;
    req.on('data', this.#onData);
    req.once('end', this.#onEnd);
    // Node reports a client that went away mid-body as `aborted` and an error on the request stream.
    req.once('error', this.#onGone);
    req.once('close', this.#onClose);
    this.#idle = setTimeout(this.#onIdle, this.#limits.idleTimeout);
  }

  readonly #onData = (chunk: Buffer): void => {
    this.#ctx.bytesIn += chunk.length;
    if (this.#ctx.bytesIn > this.#limits.maxBytes) return this.refuse(TOO_LARGE);
    const stream = this.#stream;
    if (stream !== undefined) {
      if (stream.push(chunk)) this.#idle!.refresh();
      else this.#waitForReader();
      return;
    }
    this.#idle!.refresh();
    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    if (this.#buffered > this.#limits.bufferBytes) this.#startStreaming();
  };

  /** The buffer is full: the body goes on as a stream, paced by the upstream, that begins with what was read. */
  #startStreaming(): void {
    const stream = new Readable({
      read: () => {
        if (this.#over || !this.#paused) return;
        this.#paused = false;
        this.#req.resume();
        this.#idle!.refresh();
      },
    });
    this.#stream = stream;
    const buffered = this.#chunks;
    this.#chunks = [];
    let more = true;
    for (const chunk of buffered) more = stream.push(chunk);
    if (!more) this.#waitForReader();
    this.#settle({ kind: 'streaming', body: stream });
  }

  #waitForReader(): void {
    this.#paused = true;
    this.#req.pause();
  }

  readonly #onEnd = (): void => {
    this.#stop();
    if (this.#stream !== undefined) this.#stream.push(null);
    else this.#settle({ kind: 'whole', body: this.#chunks.length === 1 ? this.#chunks[0]! : Buffer.concat(this.#chunks, this.#buffered) });
  };

  readonly #onIdle = (): void => {
    if (!this.#paused) this.refuse(IDLE);
  };

  readonly #onGone = (): void => {
    if (this.#over) return;
    this.#stop();
    if (this.#stream !== undefined) this.#stream.destroy(this.#late(null));
    else this.#settle({ kind: 'client-closed' });
  };

  readonly #onClose = (): void => {
    if (!this.#req.complete) this.#onGone();
  };

  /** Ends the reading with `refusal`: answered by whoever holds the body now (the pipeline, or the late handler). */
  refuse(refusal: BodyRefusal): void {
    if (this.#over) return;
    this.#stop();
    // what the client still sends is read and dropped until the connection closes behind the answer
    this.#req.resume();
    if (this.#stream !== undefined) this.#stream.destroy(this.#late(refusal));
    else this.#settle({ kind: 'refused', refusal });
  }

  #stop(): void {
    this.#over = true;
    clearTimeout(this.#idle);
    const req = this.#req;
    req.off('data', this.#onData);
    req.off('end', this.#onEnd);
    req.off('close', this.#onClose);
    // an error after this point must not become an uncaught one
    req.off('error', this.#onGone);
    req.on('error', ignore);
    activeReaders.delete(req);
  }
}

function ignore(): void {}
