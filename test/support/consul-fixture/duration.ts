// Consul parses `wait` with Go's time.ParseDuration, so "100ms", "1m30s" and "0" are valid but a bare
// "10" (no unit) is rejected with 400. Reproducing that grammar keeps clients honest about units.

const UNIT_MS: Readonly<Record<string, number>> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3,
  'μs': 1e-3,
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const DURATION_PART = /(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)/y;

/** Milliseconds for a Go duration string, or undefined when Go would refuse it. */
export function parseGoDuration(text: string): number | undefined {
  const sign = text.startsWith('-') ? -1 : 1;
  const body = text.replace(/^[-+]/, '');
  if (body === '0') return 0;
  if (body === '') return undefined;
  let total = 0;
  let position = 0;
  while (position < body.length) {
    DURATION_PART.lastIndex = position;
    const part = DURATION_PART.exec(body);
    if (!part) return undefined;
    const [, amount = '', unit = ''] = part;
    total += Number.parseFloat(amount) * (UNIT_MS[unit] ?? Number.NaN);
    position = DURATION_PART.lastIndex;
  }
  return Number.isFinite(total) ? sign * total : undefined;
}

const DEFAULT_QUERY_TIME_MS = 5 * 60_000;
const MAX_QUERY_TIME_MS = 10 * 60_000;
/** Consul's structs.JitterFraction: a blocking query may overrun its wait by up to wait/16. */
const JITTER_FRACTION = 16;

/** How long a blocking query is held, following Consul's server-side clamping and jitter. */
export function blockingQueryTimeout(requestedMs: number | undefined): number {
  let timeout = requestedMs ?? 0;
  if (timeout > MAX_QUERY_TIME_MS) timeout = MAX_QUERY_TIME_MS;
  else if (timeout <= 0) timeout = DEFAULT_QUERY_TIME_MS;
  return timeout + Math.random() * (timeout / JITTER_FRACTION);
}
