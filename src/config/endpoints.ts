// Addresses of the services zonegate connects to, read the way their clients read them, so that
// `zonegate validate` refuses what would otherwise only fail (or crash) when the gateway starts or reloads,
// or connect somewhere else than written: both clients take an unknown scheme for a host name.

/**
 * `name:` not followed by a digit: a scheme, as in `unix:///x.sock` or `https:/c` (`consul:8500` is a host and a
 * port). Both clients below only check for their own schemes and read anything else as `host:port/path`.
 */
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):(?!\d)/;

/**
 * `text` with the password of a URL's user info replaced by `***`, so that an error message can quote a Redis
 * URL or Consul address. Works on text no URL parser accepts, too: the text is quoted because it is wrong.
 */
export function maskUserinfo(text: string): string {
  // ioredis also reads `user:password@host` without a scheme
  const slashes = text.indexOf('//');
  const authority = slashes < 0 ? 0 : slashes + 2;
  const at = text.lastIndexOf('@');
  if (at < authority) return text;
  const colon = text.indexOf(':', authority);
  return colon < 0 || colon > at ? text : `${text.slice(0, colon + 1)}***${text.slice(at)}`;
}

/** `expected …, got "<value>" (reason)`, with any password masked. */
function refusal(expected: string, value: string, reason?: string): string {
  return `${expected}, got ${JSON.stringify(maskUserinfo(value))}${reason === undefined ? '' : ` (${reason})`}`;
}

function withHttp(address: string): string {
  return /^https?:\/\//i.test(address) ? address : `http://${address}`;
}

/** A `discovery.consul.address` as a URL: `host:port` means `http://host:port`. Throws a TypeError when it is none. */
export function consulUrl(address: string): URL {
  return new URL(withHttp(address));
}

/**
 * Why the Consul client could not use `address` as written, or undefined when it can. The client is given only
 * the scheme, host and port, so a path, query or user name would be dropped without a word: refused instead.
 */
export function consulAddressProblem(address: string): string | undefined {
  const refuse = (reason?: string): string => refusal('expected http://host:port, https://host:port or host:port', address, reason);
  const scheme = SCHEME.exec(address)?.[1];
  if (scheme !== undefined && !/^https?:\/\//i.test(address)) {
    return refuse(/^https?$/i.test(scheme) ? 'the scheme needs "//"' : `Consul is reached over HTTP: "${scheme}:" is not supported`);
  }
  if (scheme === undefined && !/^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):\d{1,5}$/.test(address)) return refuse();
  if (!URL.canParse(withHttp(address))) return refuse();
  const url = consulUrl(address);
  if (url.username !== '' || url.password !== '') return refuse('no user or password here: set discovery.consul.token');
  if (url.pathname !== '/' || url.search !== '' || url.hash !== '') return refuse('no path or query: only the host and port are used');
  return undefined;
}


/**
 * Why ioredis could not connect to `value` as written (its `parseURL`), or undefined when it can: a port, a Unix
 * socket path, `host[:port]`, or a `redis://` / `rediss://` URL whose path is a database number.
 */
export function redisAddressProblem(value: string): string | undefined {
  const refuse = (reason?: string): string =>
    refusal('expected redis://[user:password@]host:port[/db], rediss://…, host:port or a Unix socket path', value, reason);
  if (/^\d+$/.test(value)) return Number(value) <= 65535 ? undefined : refuse('a port is at most 65535');
  if (value.startsWith('/') && !value.startsWith('//')) return undefined;
  // `user:password@host:port` without `//` is user info, not a scheme: ioredis reads it so
  const scheme = /^[^/@]*@/.test(value) ? undefined : SCHEME.exec(value)?.[1];
  // ioredis turns on TLS only for a lower-case `rediss://`: `Rediss://` would connect in plain text
  if (scheme !== undefined && !/^rediss?:\/\//.test(value)) {
    return refuse(/^rediss?$/i.test(scheme) ? 'write the scheme as redis:// or rediss://: lower case, with "//"' : `"${scheme}:" is not a Redis scheme`);
  }
  const url = scheme !== undefined ? value : value.startsWith('//') ? `redis:${value}` : `redis://${value}`;
  if (!URL.canParse(url)) return refuse();
  const { pathname } = new URL(url);
  if (scheme === undefined && !value.startsWith('//')) {
    // without a scheme ioredis takes a path for a Unix socket and ignores the host
    if (pathname !== '' && pathname !== '/') return refuse('a database number needs redis://');
  } else if (!/^(?:\/\d*)?$/.test(pathname)) {
    return refuse('the path is the database number');
  }
  return undefined;
}
