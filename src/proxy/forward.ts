// One try of an upstream exchange over undici's `dispatch` (the cheapest client API; its handler API is kept
// to this file): the relay moves the response to the client with backpressure both ways. The try settles with
// the status once the response head is committed to the client, or with a classified UpstreamFailure before
// that, which the exchange answers (502/504) or retries. What to retry is not decided here: a final status is
// put to the exchange's judge, which may discard it.
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { RequestContext } from '../core/context.ts';
import { classifyFailure, UpstreamFailure } from '../core/failure.ts';
import { isChunkedOnly } from '../listener/framing.ts';
import { downstreamResponseHead, downstreamTrailers } from './headers.ts';

export interface TryRequest {
  readonly method: string;
  /** path and query as sent upstream */
  readonly path: string;
  readonly headers: string[];
  /** a Buffer can be sent again by a retry; a stream cannot */
  readonly body: Readable | Buffer | null;
  /** longest wait for the response head, enforced to the millisecond (undici's own timer ticks every ~0.5 s) */
  readonly headersTimeout: number;
  /** when every connection to the instance is busy: longest wait for one (0: not queued, no wait timer) */
  readonly queueTimeout: number;
  /** longest gap between two response body chunks */
  readonly bodyTimeout: number;
  /** added to the response head (routing headers) */
  readonly responseHeaders: OutgoingHttpHeaders | undefined;
  /** called once when the try is over: the response went through, failed, or was aborted */
  readonly onDone?: (() => void) | undefined;
}

/** Decides, for each final status, whether it goes to the client or is discarded for another try. */
export interface TryJudge {
  /** false discards the answer: the try then fails with kind `status` */
  passes(status: number): boolean;
}

/** The status once the response head is committed, or why the try failed before that. */
export type TryResult = number | UpstreamFailure;

/** Bridges one undici exchange to the client response, with backpressure in both directions. */
class ResponseRelay implements Dispatcher.DispatchHandler {
  readonly #res: ServerResponse;
  readonly #ctx: RequestContext;
  /** hears the try's result once: a status once the head is committed, or the failure before that */
  readonly #settle: (result: TryResult) => void;
  /** the result went out: an abort can fail the try first and undici's error for it arrive after */
  #settled = false;
  readonly #extraHeaders: OutgoingHttpHeaders | undefined;
  readonly #judge: TryJudge;
  readonly #onDone: (() => void) | undefined;
  #controller: Dispatcher.DispatchController | null = null;
  #pendingAbort: UpstreamFailure | null = null;
  #headDeadline: NodeJS.Timeout | undefined;
  #queueDeadline: NodeJS.Timeout | undefined;
  #headTimeoutMs = 0;
  /** the upstream response's Connection header: the trailers it names are hop-by-hop too */
  #connection: string | string[] | undefined;
  #streamedBody = false;
  #committed = false;
  #done = false;

  constructor(
    res: ServerResponse,
    ctx: RequestContext,
    settle: (result: TryResult) => void,
    request: TryRequest,
    judge: TryJudge,
  ) {
    this.#res = res;
    this.#extraHeaders = request.responseHeaders;
    this.#judge = judge;
    this.#onDone = request.onDone;
    this.#ctx = ctx;
    this.#settle = settle;
    res.on('close', this.#onClientClose); // `on`: removed in #finish, so `once` would only add a wrapper
  }

  /**
   * Fails the attempt with a timeout unless the response head arrives within `ms`. The clock stops while a
   * streamed body is being sent (the client sets that pace, and its own request timeout bounds it) and starts
   * again once it is sent: a slow upload is not the upstream's failure.
   */
  armHeadDeadline(ms: number, streamedBody: boolean): void {
    this.#headTimeoutMs = ms;
    this.#streamedBody = streamedBody;
    this.#headDeadline = setTimeout(this.#headTimedOut, ms);
  }

  /** Fails the try as an overflow unless a connection takes the request within `ms` (nothing is sent then). */
  armQueueDeadline(ms: number): void {
    this.#queueDeadline = setTimeout(this.#queueTimedOut, ms);
  }

  /** Aborts the exchange. Before undici hands us a controller the attempt fails at once, and undici drops the request when it would start it. */
  abort(reason: UpstreamFailure): void {
    if (this.#done) return;
    if (this.#controller) return this.#controller.abort(reason);
    // Still queued in the pool (every connection busy) or connecting: the attempt fails now, and undici
    // drops the request the moment it would have been sent.
    this.#pendingAbort = reason;
    this.fail(reason);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    clearTimeout(this.#queueDeadline);
    if (this.#pendingAbort) return controller.abort(this.#pendingAbort);
    if (this.#streamedBody) clearTimeout(this.#headDeadline);
  }

  onRequestSent(): void {
    // An instance may answer before it has read the whole body (an early reply, a duplex API): its head is in.
    if (this.#streamedBody && !this.#done && !this.#committed) this.#headDeadline = setTimeout(this.#headTimedOut, this.#headTimeoutMs);
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: IncomingHttpHeaders,
  ): void {
    if (statusCode < 200) {
      if (statusCode === 103 && headers.link !== undefined && this.#res.req.httpVersionMinor >= 1) this.#earlyHints(headers.link);
      return;
    }
    clearTimeout(this.#headDeadline);
    const codings = headers['transfer-encoding'];
    if (codings !== undefined && !isChunkedOnly(String(codings))) {
      // undici removed only the chunking: the rest (gzip, …) cannot be relayed without it (nginx: 502 too)
      controller.abort(new UpstreamFailure('bad-response', new Error(`unsupported transfer coding "${String(codings)}" in the response`)));
      return;
    }
    if (!this.#judge.passes(statusCode)) {
      controller.abort(new UpstreamFailure('status', undefined, statusCode));
      return;
    }
    const ctx = this.#ctx;
    ctx.status = statusCode;
    this.#connection = headers.connection;
    // Trailers need a chunked body. An upstream may announce them on a response that has none to the client
    // (HEAD, 204, 304, a declared length, an HTTP/1.0 client), where Node refuses the whole head.
    const keepTrailer = headers.trailer === undefined || this.#sendsChunked(statusCode, headers);
    this.#res.writeHead(statusCode, downstreamResponseHead(headers, ctx, this.#res, this.#extraHeaders, keepTrailer));
    this.#committed = true;
    this.#settled = true;
    this.#settle(statusCode);
    if (this.#res.destroyed) controller.abort(new UpstreamFailure('client-closed'));
  }

  /** Hints are optional (RFC 8297): ones Node refuses to relay, such as a comma-separated Link list, are dropped. */
  #earlyHints(link: string | string[]): void {
    try {
      this.#res.writeEarlyHints({ link });
    } catch {
      // the final response still follows
    }
  }

  #sendsChunked(statusCode: number, head: IncomingHttpHeaders): boolean {
    return (
      this.#res.useChunkedEncodingByDefault &&
      this.#ctx.method !== 'HEAD' &&
      statusCode !== 204 &&
      statusCode !== 304 &&
      head['content-length'] === undefined
    );
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.#ctx.bytesOut += chunk.length;
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', this.#resume);
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#finish();
    const passed = downstreamTrailers(trailers, this.#connection);
    if (passed) this.#res.addTrailers(passed);
    this.#res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.fail(err);
  }

  fail(err: unknown): void {
    this.#finish();
    const failure = classifyFailure(err);
    if (!this.#committed) {
      if (this.#settled) return;
      this.#settled = true;
      this.#settle(failure);
      return;
    }
    // The head is out: the client can only learn of the failure by the connection dropping mid-body.
    if (failure.kind !== 'client-closed') this.#ctx.error = 'upstream_body_failed';
    this.#res.destroy();
  }

  #finish(): void {
    if (this.#done) return;
    clearTimeout(this.#headDeadline);
    clearTimeout(this.#queueDeadline);
    this.#done = true;
    // a finished relay must not stay reachable from the response (and through it the exchange and undici's request)
    this.#res.off('close', this.#onClientClose);
    this.#onDone?.();
  }

  readonly #headTimedOut = (): void => {
    this.abort(new UpstreamFailure('timeout'));
  };

  readonly #queueTimedOut = (): void => {
    if (this.#controller === null) this.abort(new UpstreamFailure('overflow'));
  };

  readonly #resume = (): void => {
    this.#controller?.resume();
  };

  readonly #onClientClose = (): void => {
    if (!this.#res.writableFinished) this.abort(new UpstreamFailure('client-closed'));
  };
}

/** Sends one try; `settled` hears once its response head is committed to the client, or it failed before that. */
export function sendTry(
  dispatcher: Dispatcher,
  request: TryRequest,
  res: ServerResponse,
  ctx: RequestContext,
  judge: TryJudge,
  settled: (result: TryResult) => void,
): void {
  const relay = new ResponseRelay(res, ctx, settled, request, judge);
  relay.armHeadDeadline(request.headersTimeout, request.body !== null && !Buffer.isBuffer(request.body));
  if (request.queueTimeout > 0) relay.armQueueDeadline(request.queueTimeout);
  try {
    dispatcher.dispatch(
      {
        method: request.method as Dispatcher.HttpMethod,
        path: request.path,
        headers: request.headers,
        body: request.body,
        headersTimeout: request.headersTimeout,
        bodyTimeout: request.bodyTimeout,
      },
      relay,
    );
  } catch (err) {
    // dispatch throws synchronously on arguments undici refuses (e.g. a header value it cannot send).
    relay.fail(err);
  }
}
