// The errors the gateway answers itself, by code, with their status (DESIGN.md "Errors the gateway itself answers").
// The code is the JSON body's `error` and the access line's `error`.

export const GATEWAY_ERRORS = {
  bad_request: 400,
  route_not_found: 404,
  /** zonegate's addition: the request (its body) did not arrive in time */
  request_timeout: 408,
  body_too_large: 413,
  /** zonegate's addition: an `Expect` other than 100-continue */
  expectation_failed: 417,
  rate_limited: 429,
  upstream_unavailable: 502,
  no_healthy_upstream: 503,
  remote_write_refused: 503,
  /** zonegate's addition: every connection and queue slot of the instances that could serve is taken */
  upstream_overloaded: 503,
  /** zonegate's addition: Redis cannot decide and `redis.onError: deny` */
  rate_limit_unavailable: 503,
  upstream_timeout: 504,
  /** zonegate's addition: a request transfer coding other than chunked */
  not_implemented: 501,
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERRORS;
