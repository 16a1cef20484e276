// What the benchmark's reference forwarders share: the end-to-end headers of a message (RFC 9110 §7.6.1).
type Headers = Readonly<Record<string, string | string[] | undefined>>;

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

/** `headers` without hop-by-hop ones and those its `Connection` names */
export function endToEndHeaders(headers: Headers): Record<string, string | string[]> {
  const connectionTokens = String(headers['connection'] ?? '').toLowerCase().split(',').map((token) => token.trim());
  const kept: Record<string, string | string[]> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined && !HOP_BY_HOP.includes(name) && !connectionTokens.includes(name)) kept[name] = value;
  }
  return kept;
}
