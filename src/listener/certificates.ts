// The HTTPS listener's certificates: read from their files, checked (readable, key matching, in date) and built into
// secure contexts once, then picked per handshake by the server name the client asked for (SNI).
import { readFileSync } from 'node:fs';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { createSecureContext, type SecureContext, type SecureContextOptions } from 'node:tls';
import type { ConfigPath, ConfigPathIssue } from '../config/errors.ts';
import type { ListenerTlsConfig } from '../config/schema.ts';

/** What `explain` and the admin API show of a certificate. */
export interface CertificateInfo {
  /** where it is configured: `gateway.tls` (the default) or `gateway.tls.sni[1]` */
  readonly entry: string;
  readonly certFile: string;
  readonly subject: string;
  readonly dnsNames: readonly string[];
  readonly validTo: string;
  readonly fingerprint256: string;
}

interface LoadedCertificate {
  readonly info: CertificateInfo;
  readonly context: SecureContext;
  /** the options the context was made from: what `server.setSecureContext` takes for the default */
  readonly options: SecureContextOptions;
}

/** The answer to "which certificate does this host get": the match that chose it, and the certificate. */
export interface CertificateChoice {
  /** `exact`, `wildcard` (*.suffix), or `default` (no sni entry names the host) */
  readonly match: 'exact' | 'wildcard' | 'default';
  readonly certificate: CertificateInfo;
}

/** The certificates of one listener: immutable, replaced whole when a file or the config changes. */
export class CertificateSet {
  readonly #exact: ReadonlyMap<string, LoadedCertificate>;
  readonly #wildcard: ReadonlyMap<string, LoadedCertificate>;
  readonly #default: LoadedCertificate;
  /** every file the set was read from, for the watcher */
  readonly files: readonly string[];

  constructor(
    exact: ReadonlyMap<string, LoadedCertificate>,
    wildcard: ReadonlyMap<string, LoadedCertificate>,
    fallback: LoadedCertificate,
    files: readonly string[],
  ) {
    this.#exact = exact;
    this.#wildcard = wildcard;
    this.#default = fallback;
    this.files = files;
  }

  #lookup(serverName: string | undefined): { match: CertificateChoice['match']; loaded: LoadedCertificate } {
    if (serverName) {
      // a fully qualified name may end with a dot (`api.example.com.`): the same host
      const name = (serverName.endsWith('.') ? serverName.slice(0, -1) : serverName).toLowerCase();
      const exact = this.#exact.get(name);
      if (exact !== undefined) return { match: 'exact', loaded: exact };
      const dot = name.indexOf('.');
      const wildcard = dot === -1 ? undefined : this.#wildcard.get(name.slice(dot + 1));
      if (wildcard !== undefined) return { match: 'wildcard', loaded: wildcard };
    }
    return { match: 'default', loaded: this.#default };
  }

  /** The context for a handshake that asked for `serverName` (none: the default certificate). */
  contextFor(serverName: string | undefined): SecureContext {
    return this.#lookup(serverName).loaded.context;
  }

  choose(serverName: string | undefined): CertificateChoice {
    const { match, loaded } = this.#lookup(serverName);
    return { match, certificate: loaded.info };
  }

  /** Options of the default certificate, for handshakes without SNI (the server's own context). */
  get defaultOptions(): SecureContextOptions {
    return this.#default.options;
  }

  describe(): CertificateInfo[] {
    return [this.#default, ...new Set([...this.#exact.values(), ...this.#wildcard.values()])].map((c) => c.info);
  }
}

/** One certificate problem, at the config entry that names the file. */
export class CertificateProblem extends Error {
  readonly path: ConfigPath;
  constructor(path: ConfigPath, message: string) {
    super(message);
    this.name = 'CertificateProblem';
    this.path = path;
  }
}

function readPem(file: string, path: ConfigPath, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message;
    throw new CertificateProblem(path, `cannot read ${what} file "${file}": ${reason}`);
  }
}

/** Shared by every context of the listener: versions, the client CA, and what HTTP/2 requires of TLS. */
export interface ContextSettings {
  readonly minVersion: ListenerTlsConfig['minVersion'];
  readonly clientCa: Buffer | undefined;
}

/** A certificate and its key, read and checked: both PEM, matching, and the certificate in date. */
export interface KeyPair {
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly leaf: X509Certificate;
}

export function readKeyPair(files: { cert: string; key: string }, path: ConfigPath, now: number): KeyPair {
  const certPem = readPem(files.cert, [...path, 'cert'], 'certificate');
  const keyPem = readPem(files.key, [...path, 'key'], 'key');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(certPem);
  } catch (err) {
    throw new CertificateProblem([...path, 'cert'], `"${files.cert}" holds no PEM certificate (${(err as Error).message})`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw new CertificateProblem([...path, 'key'], `"${files.key}" holds no PEM private key (${(err as Error).message})`);
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new CertificateProblem([...path, 'key'], `the key in "${files.key}" does not match the certificate in "${files.cert}"`);
  }
  const validTo = Date.parse(leaf.validTo);
  if (validTo <= now) throw new CertificateProblem([...path, 'cert'], `the certificate in "${files.cert}" expired on ${new Date(validTo).toISOString()}`);
  return { certPem, keyPem, leaf };
}

function loadCertificate(
  entry: string,
  files: { cert: string; key: string },
  path: ConfigPath,
  settings: ContextSettings,
  now: number,
): LoadedCertificate {
  const { certPem, keyPem, leaf } = readKeyPair(files, path, now);
  const validTo = Date.parse(leaf.validTo);
  const options: SecureContextOptions = {
    cert: certPem,
    key: keyPem,
    minVersion: settings.minVersion,
    ...(settings.clientCa === undefined ? {} : { ca: settings.clientCa }),
  };
  let context: SecureContext;
  try {
    context = createSecureContext(options);
  } catch (err) {
    throw new CertificateProblem([...path, 'cert'], `"${files.cert}" cannot be used: ${(err as Error).message}`);
  }
  const info: CertificateInfo = {
    entry,
    certFile: files.cert,
    subject: leaf.subject.replaceAll('\n', ', '),
    dnsNames: dnsNames(leaf),
    validTo: new Date(validTo).toISOString(),
    fingerprint256: leaf.fingerprint256,
  };
  return { info, context, options };
}

function dnsNames(cert: X509Certificate): string[] {
  return (cert.subjectAltName ?? '')
    .split(', ')
    .filter((name) => name.startsWith('DNS:'))
    .map((name) => name.slice(4));
}

/**
 * Reads and checks every certificate of the listener; throws the first CertificateProblem. The default certificate
 * is `cert`/`key`, else the first sni entry's (as nginx's first server is the default).
 */
export function loadCertificateSet(tls: ListenerTlsConfig, now = Date.now()): CertificateSet {
  const base: ConfigPath = ['gateway', 'tls'];
  const clientCa = tls.clientCa === undefined ? undefined : readCaBundle(tls.clientCa, [...base, 'clientCa']);
  const settings: ContextSettings = { minVersion: tls.minVersion, clientCa };
  const exact = new Map<string, LoadedCertificate>();
  const wildcard = new Map<string, LoadedCertificate>();
  const files: string[] = tls.clientCa === undefined ? [] : [tls.clientCa];
  tls.sni.forEach((entry, index) => {
    const path = [...base, 'sni', index];
    const loaded = loadCertificate(`gateway.tls.sni[${index}]`, entry, path, settings, now);
    files.push(entry.cert, entry.key);
    for (const host of entry.hosts) {
      const name = host.toLowerCase();
      const [table, key] = name.startsWith('*.') ? [wildcard, name.slice(2)] : [exact, name];
      // the first entry that names a host keeps it, as the first route that matches wins
      if (!table.has(key)) table.set(key, loaded);
    }
  });
  let fallback: LoadedCertificate;
  if (tls.cert !== undefined && tls.key !== undefined) {
    fallback = loadCertificate('gateway.tls', { cert: tls.cert, key: tls.key }, base, settings, now);
    files.push(tls.cert, tls.key);
  } else {
    fallback = (exact.values().next().value ?? wildcard.values().next().value)!;
  }
  return new CertificateSet(exact, wildcard, fallback, files);
}

function checkCaBundle(pem: Buffer, file: string, path: ConfigPath): void {
  try {
    new X509Certificate(pem);
  } catch (err) {
    throw new CertificateProblem(path, `"${file}" holds no PEM CA certificate (${(err as Error).message})`);
  }
}

/** A PEM bundle of CA certificates, read and checked (its first certificate parses). */
export function readCaBundle(file: string, path: ConfigPath): Buffer {
  const pem = readPem(file, path, 'CA');
  checkCaBundle(pem, file, path);
  return pem;
}

/** Runs each check; the CertificateProblems they throw become config issues at their entries. */
export function certificateProblems(checks: readonly (() => unknown)[]): ConfigPathIssue[] {
  const issues: ConfigPathIssue[] = [];
  for (const check of checks) {
    try {
      check();
    } catch (err) {
      if (!(err instanceof CertificateProblem)) throw err;
      issues.push({ path: err.path, message: err.message });
    }
  }
  return issues;
}

/** `validate`'s view: every certificate problem of the listener, each at its config entry. */
export function certificateIssues(tls: ListenerTlsConfig | undefined, now = Date.now()): ConfigPathIssue[] {
  if (tls === undefined) return [];
  const base: ConfigPath = ['gateway', 'tls'];
  let clientCa: Buffer | undefined;
  const caIssues = tls.clientCa === undefined ? [] : certificateProblems([() => (clientCa = readCaBundle(tls.clientCa!, [...base, 'clientCa']))]);
  const settings: ContextSettings = { minVersion: tls.minVersion, clientCa };
  const { cert, key } = tls;
  return [
    ...caIssues,
    ...certificateProblems([
      ...tls.sni.map((entry, index) => () => loadCertificate('', entry, [...base, 'sni', index], settings, now)),
      ...(cert !== undefined && key !== undefined ? [() => loadCertificate('', { cert, key }, base, settings, now)] : []),
    ]),
  ];
}
