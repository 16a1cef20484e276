// `validate` on gateway.tls: certificate files that cannot serve are config errors at the entry that names them.
import assert from 'node:assert/strict';
import { copyFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { loadCertificateSet } from '../../src/listener/certificates.ts';
import { TestPki, type PemFiles } from '../support/certificates.ts';
import { assertIssue, configErrorOf, withGatewayLine } from '../config/fixtures/config-files.ts';

let pki: TestPki;
let ca: PemFiles;
let api: PemFiles;
let other: PemFiles;
let expired: PemFiles;

before(() => {
  pki = new TestPki();
  ca = pki.ca('ca');
  api = pki.leaf('api', ca, { cn: 'api.example.test', dns: ['api.example.test', 'www.example.test'] });
  other = pki.leaf('other', ca, { cn: 'other.example.test', dns: ['other.example.test'] });
  expired = pki.expired('old', 'old.example.test');
});

after(() => pki.close());

/** gateway.tls from line 3: cert on line 4, key on 5, the sni entry's cert on 7 and key on 8, clientCa on 10. */
function tlsConfig(files: { cert: string; key: string; sniCert?: string; sniKey?: string; clientCa?: string }): string {
  return withGatewayLine(
    [
      '  tls:',
      `    cert: ${files.cert}`,
      `    key: ${files.key}`,
      '    sni:',
      `      - cert: ${files.sniCert ?? api.cert}`,
      `        key: ${files.sniKey ?? api.key}`,
      '        hosts: [api.example.test]',
      ...(files.clientCa === undefined ? [] : [`    clientCa: ${files.clientCa}`]),
    ].join('\n'),
  );
}

describe('validate: gateway.tls certificate files', () => {
  it('accepts readable, matching, unexpired certificates', () => {
    const config = loadConfigText(tlsConfig({ cert: other.cert, key: other.key, clientCa: ca.cert }), 'routes.yaml', {});
    assert.equal(config.gateway.tls?.listen.port, 8443);
    assert.equal(config.gateway.tls?.minVersion, 'TLSv1.2');
    assert.equal(config.gateway.tls?.h2, true);
  });

  it('names an unreadable file at its entry', () => {
    const error = configErrorOf(tlsConfig({ cert: pki.path('missing.crt'), key: other.key }));
    assertIssue(error, 4, 11, `gateway.tls.cert: cannot read certificate file "${pki.path('missing.crt')}": no such file`);
  });

  it('names a key that does not match its certificate, at the key', () => {
    const error = configErrorOf(tlsConfig({ cert: other.cert, key: other.key, sniKey: other.key }));
    assertIssue(error, 8, 14, `gateway.tls.sni[0].key: the key in "${other.key}" does not match the certificate in "${api.cert}"`);
  });

  it('names an expired certificate with its end date', () => {
    const error = configErrorOf(tlsConfig({ cert: expired.cert, key: expired.key }));
    assertIssue(error, 4, 11, 'gateway.tls.cert: the certificate in');
    assertIssue(error, 4, 11, 'expired on 2020-02-01T00:00:00.000Z');
  });

  it('names a file that holds no certificate, and reports every bad entry at once', () => {
    const garbage = pki.path('garbage.pem');
    writeFileSync(garbage, 'hello\n');
    const error = configErrorOf(tlsConfig({ cert: garbage, key: other.key, sniCert: pki.path('nope.crt'), clientCa: garbage }));
    assertIssue(error, 4, 11, `gateway.tls.cert: "${garbage}" holds no PEM certificate`);
    assertIssue(error, 7, 15, 'gateway.tls.sni[0].cert: cannot read certificate file');
    assertIssue(error, 10, 15, `gateway.tls.clientCa: "${garbage}" holds no PEM CA certificate`);
  });

  it('refuses a cert without a key, and a listener without any certificate', () => {
    assertIssue(configErrorOf(withGatewayLine(`  tls: { cert: ${api.cert} }`)), 3, 8, 'cert and key go together');
    assertIssue(configErrorOf(withGatewayLine('  tls: { h2: true }')), 3, 8, 'an HTTPS listener needs a certificate');
    assertIssue(configErrorOf(withGatewayLine(`  tls: { sni: [{ hosts: ["*.*.x"], cert: ${api.cert}, key: ${api.key} }] }`)), 3, 26, 'expected a server name');
  });
});

describe('validate: gateway.tls.listen', () => {
  it('refuses the port of the plain or admin listener', () => {
    const config = withGatewayLine(`  listen: 0.0.0.0:8443\n  tls: { listen: ":8443", cert: ${api.cert}, key: ${api.key} }`);
    assertIssue(configErrorOf(config), 4, 18, "gateway.tls.listen: port 8443 is also gateway.listen's");
  });
});

describe('certificate set', () => {
  it('chooses exact names over wildcards, wildcards for one label, else the default; describes each certificate', () => {
    const wild = pki.leaf('wild', ca, { cn: '*.example.test', dns: ['*.example.test'] });
    copyFileSync(wild.cert, pki.path('wild-copy.crt'));
    const set = loadCertificateSet({
      listen: { host: '', port: 0 },
      cert: other.cert,
      key: other.key,
      sni: [
        { hosts: ['*.example.test'], cert: wild.cert, key: wild.key },
        { hosts: ['api.example.test'], cert: api.cert, key: api.key },
      ],
      clientCert: 'require',
      minVersion: 'TLSv1.2',
      h2: true,
      maxConcurrentStreams: 100,
      redirectPlain: false,
    });
    assert.deepEqual(set.choose('api.example.test').match, 'exact');
    assert.equal(set.choose('api.example.test').certificate.entry, 'gateway.tls.sni[1]');
    assert.equal(set.choose('shop.example.test').match, 'wildcard');
    assert.equal(set.choose('a.shop.example.test').match, 'default');
    assert.equal(set.choose(undefined).certificate.subject, 'CN=other.example.test');
    assert.deepEqual(set.choose('api.example.test').certificate.dnsNames, ['api.example.test', 'www.example.test']);
    assert.equal(set.describe().length, 3);
  });
});
