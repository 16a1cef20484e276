// `zonegate health`: asks a running gateway's admin listener for /healthz, for a container HEALTHCHECK or a
// supervisor (the image has no curl). /healthz answers without the admin token.
import type { HostPort } from '../config/schema.ts';

const PROBE_TIMEOUT_MS = 3000;

/** Where to reach a listener bound to `address` from this host: an unspecified address is reached on loopback. */
export function probeUrl(address: HostPort, path: string): string {
  const host = address.host === '' || address.host === '0.0.0.0' ? '127.0.0.1' : address.host === '::' ? '::1' : address.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${address.port}${path}`;
}

/** 0 when /healthz answers 200 within 3 s; otherwise 1, after one line on stderr saying what happened. */
export async function probeHealth(admin: HostPort): Promise<number> {
  const url = probeUrl(admin, '/healthz');
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await response.body?.cancel();
    if (response.status === 200) {
      console.log(`ok: ${url}`);
      return 0;
    }
    console.error(`unhealthy: ${url} answered ${response.status}`);
  } catch (err) {
    const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : String(err);
    console.error(`unhealthy: ${url} did not answer (${cause})`);
  }
  return 1;
}
