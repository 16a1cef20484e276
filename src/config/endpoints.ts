// Addresses of the services zonegate connects to, read the way their clients read them, so that
// `zonegate validate` refuses what would otherwise only fail (or crash) when the gateway starts or reloads.

function withHttp(address: string): string {
  return /^https?:\/\//i.test(address) ? address : `http://${address}`;
}

/** A `discovery.consul.address` as a URL: `host:port` means `http://host:port`. Throws a TypeError when it is none. */
export function consulUrl(address: string): URL {
  return new URL(withHttp(address));
}

export function isConsulAddress(address: string): boolean {
  return URL.canParse(withHttp(address));
}

/**
 * Whether ioredis can connect to `value` (as its `parseURL` reads it): a port, a Unix socket path, or a URL
 * with or without `redis://` / `rediss://`.
 */
export function isRedisAddress(value: string): boolean {
  if (/^\d+$/.test(value) || (value.startsWith('/') && !value.startsWith('//'))) return true;
  const url = /^rediss?:\/\//i.test(value) ? value : value.startsWith('//') ? `redis:${value}` : `redis://${value}`;
  return URL.canParse(url);
}
