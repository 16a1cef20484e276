// Certificate files are looked at by path and reloaded when one changes: a rotated certificate (certbot, cert-manager,
// a Kubernetes secret's `..data` symlink swap) is served without a restart. A set that fails to load (a half-written
// file, a key that does not match yet) is reported and the running set keeps serving, as a bad routes.yaml is.
import { unwatchFile, watchFile, type Stats } from 'node:fs';
import type { ListenerTlsConfig } from '../config/schema.ts';
import { loadCertificateSet, type CertificateSet } from './certificates.ts';

/** stat polling by path follows symlinks and survives rename-into-place, which a directory watch does not */
const POLL_MS = 1000;
/** a certificate and its key are written one after the other: wait for both before loading */
const SETTLE_MS = 200;

export interface CertificateWatchOptions {
  onLoaded(set: CertificateSet): void;
  onError(error: Error): void;
  readonly pollMs?: number;
}

export interface CertificateWatcher {
  /** Loads the files now; same rules as a change. */
  reload(): void;
  close(): void;
}

export function watchCertificates(tls: ListenerTlsConfig, files: readonly string[], options: CertificateWatchOptions): CertificateWatcher {
  let closed = false;
  let settle: NodeJS.Timeout | undefined;
  const reload = (): void => {
    if (closed) return;
    try {
      options.onLoaded(loadCertificateSet(tls));
    } catch (err) {
      options.onError(err instanceof Error ? err : new Error(String(err)));
    }
  };
  const changed = (now: Stats, before: Stats): void => {
    if (now.mtimeMs === before.mtimeMs && now.ino === before.ino && now.size === before.size) return;
    clearTimeout(settle);
    settle = setTimeout(reload, SETTLE_MS);
  };
  const unique = [...new Set(files)];
  for (const file of unique) watchFile(file, { interval: options.pollMs ?? POLL_MS, persistent: false }, changed);
  return {
    reload,
    close() {
      closed = true;
      clearTimeout(settle);
      for (const file of unique) unwatchFile(file, changed);
    },
  };
}
