// autocannon ships no types; this covers only the part of its programmatic API the benchmark uses.
declare module 'autocannon' {
  export interface RequestSpec {
    readonly method?: string;
    readonly path?: string;
    readonly headers?: Readonly<Record<string, string>>;
    readonly body?: string | Buffer;
  }

  export interface Options {
    readonly url: string;
    readonly connections?: number;
    /** seconds */
    readonly duration?: number;
    readonly pipelining?: number;
    /** requests per second over all connections (unset: as fast as the target answers) */
    readonly overallRate?: number;
    /** seconds to wait for a response */
    readonly timeout?: number;
    readonly title?: string;
    readonly headers?: Readonly<Record<string, string>>;
    /** each connection cycles through these in order */
    readonly requests?: readonly RequestSpec[];
    /** worker threads generating the load (then no 'response' events reach the caller) */
    readonly workers?: number;
  }

  export interface Histogram {
    readonly average: number;
    readonly mean: number;
    readonly stddev: number;
    readonly min: number;
    readonly max: number;
    readonly p50: number;
    readonly p90: number;
    readonly p99: number;
  }

  export interface Result {
    readonly title?: string;
    readonly url: string;
    /** responses per second, sampled each second; `total` counts completed requests */
    readonly requests: Histogram & { readonly total: number; readonly sent: number };
    /** milliseconds */
    readonly latency: Histogram;
    /** bytes per second */
    readonly throughput: Histogram;
    /** seconds */
    readonly duration: number;
    /** connection errors, timeouts included */
    readonly errors: number;
    readonly timeouts: number;
    readonly non2xx: number;
    readonly statusCodeStats: Readonly<Record<string, { readonly count: number }>>;
  }

  export interface Instance {
    stop(): void;
    /** `responseTimeMs` has sub-millisecond precision, unlike the 1 ms buckets of `Result.latency`. */
    on(event: 'response', listener: (client: unknown, statusCode: number, responseBytes: number, responseTimeMs: number) => void): Instance;
  }

  export default function autocannon(options: Options, done: (error: Error | null, result: Result) => void): Instance;
}
