// Real certificates for the TLS tests, made by the `openssl` CLI in a temporary directory: a CA, leaf certificates
// for server names and client identities, and an expired one.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Paths of a PEM certificate and its key. */
export interface PemFiles {
  readonly cert: string;
  readonly key: string;
}

export interface LeafOptions {
  readonly cn: string;
  /** DNS subject alternative names */
  readonly dns?: readonly string[];
  readonly ip?: readonly string[];
  /** extendedKeyUsage clientAuth instead of serverAuth */
  readonly client?: boolean;
  readonly organization?: string;
}

function openssl(cwd: string, args: string[]): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export class TestPki {
  readonly dir: string;
  #serial = 1;

  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), 'zonegate-pki-'));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  read(file: string): Buffer {
    return readFileSync(file);
  }

  ca(name: string): PemFiles {
    const files = { cert: this.path(`${name}.crt`), key: this.path(`${name}.key`) };
    openssl(this.dir, [
      'req', '-x509', ...EC_KEY, '-keyout', files.key, '-out', files.cert, '-days', '3', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return files;
  }

  leaf(name: string, ca: PemFiles, options: LeafOptions): PemFiles {
    const files = { cert: this.path(`${name}.crt`), key: this.path(`${name}.key`) };
    const csr = this.path(`${name}.csr`);
    const ext = this.path(`${name}.ext`);
    const subject = `/CN=${options.cn}${options.organization === undefined ? '' : `/O=${options.organization}`}`;
    openssl(this.dir, ['req', ...EC_KEY, '-keyout', files.key, '-out', csr, '-subj', subject]);
    const names = [...(options.dns ?? []).map((n) => `DNS:${n}`), ...(options.ip ?? []).map((n) => `IP:${n}`)];
    writeFileSync(
      ext,
      [
        'basicConstraints=CA:FALSE',
        `extendedKeyUsage=${options.client ? 'clientAuth' : 'serverAuth'}`,
        ...(names.length > 0 ? [`subjectAltName=${names.join(',')}`] : []),
      ].join('\n'),
    );
    openssl(this.dir, [
      'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', String(this.#serial++), '-days', '2',
      '-sha256', '-extfile', ext, '-out', files.cert,
    ]);
    return files;
  }

  /** A self-signed certificate that expired in 2020. */
  expired(name: string, cn: string): PemFiles {
    const files = { cert: this.path(`${name}.crt`), key: this.path(`${name}.key`) };
    const db = this.path(`${name}-db`);
    const conf = this.path(`${name}-ca.cnf`);
    writeFileSync(`${db}.index`, '');
    writeFileSync(`${db}.serial`, '01\n');
    writeFileSync(
      conf,
      `[ca]\ndefault_ca = d\n[d]\ndatabase = ${db}.index\nserial = ${db}.serial\nnew_certs_dir = ${this.dir}\n` +
        'default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n',
    );
    const csr = this.path(`${name}.csr`);
    openssl(this.dir, ['req', ...EC_KEY, '-keyout', files.key, '-out', csr, '-subj', `/CN=${cn}`]);
    openssl(this.dir, [
      'ca', '-batch', '-config', conf, '-selfsign', '-keyfile', files.key, '-in', csr, '-out', files.cert,
      '-startdate', '20200101000000Z', '-enddate', '20200201000000Z',
    ]);
    return files;
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
