// `zonegate demo --tls`: a self-signed certificate for localhost and 127.0.0.1, made by the `openssl` CLI in a
// temporary directory for the demo's lifetime. Clients trust it by pointing at the file (curl --cacert).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface DemoCertificate {
  readonly cert: string;
  readonly key: string;
  remove(): void;
}

export function demoCertificate(): DemoCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'zonegate-demo-tls-'));
  const cert = join(dir, 'localhost.crt');
  const key = join(dir, 'localhost.key');
  try {
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '7',
        '-keyout', key, '-out', cert, '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new Error(missing ? 'demo --tls makes its certificate with the openssl command, which is not installed' : `openssl failed: ${String(err)}`);
  }
  return { cert, key, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
