import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { substitute } from '../../src/config/interpolate.ts';
import type { Env } from '../../src/config/interpolate.ts';
import { loadConfigText } from '../../src/config/load.ts';
import { assertIssue, configErrorOf, editConfig, withGatewayLine } from './fixtures/config-files.ts';

describe('substitute', () => {
  it('takes values from the env and defaults for unset or empty variables', () => {
    const env = { HOST: 'db.internal', EMPTY: '' };
    assert.deepEqual(substitute('${HOST}:${PORT:-5432}/${EMPTY:-main}', env), { value: 'db.internal:5432/main', problems: [] });
  });

  it('prefers the env value over the default', () => {
    assert.equal(substitute('${PORT:-5432}', { PORT: '6000' }).value, '6000');
  });

  it('turns ${X:-} into the empty string', () => {
    assert.deepEqual(substitute('${TOKEN:-}', {}), { value: '', problems: [] });
  });

  it('keeps $${ as a literal ${', () => {
    assert.equal(substitute('$${HOST} and ${HOST}', { HOST: 'h' }).value, '${HOST} and h');
  });

  it('reports an unset variable without a default, with its index', () => {
    const { problems } = substitute('a-${SET}-${MISSING}', { SET: 'long value' });
    assert.equal(problems.length, 1);
    assert.equal(problems[0]?.index, 9);
    assert.match(problems[0]?.message ?? '', /environment variable MISSING is not set/);
  });

  it('reports malformed and unterminated placeholders', () => {
    assert.match(substitute('${1ABC}', {}).problems[0]?.message ?? '', /malformed "\$\{1ABC\}"/);
    assert.match(substitute('${ABC', {}).problems[0]?.message ?? '', /unterminated "\$\{ABC"/);
    assert.match(substitute('${A:-${B}}', {}).problems[0]?.message ?? '', /nested placeholders/);
  });
});

describe('interpolation in the loader', () => {
  const load = (text: string, env: Env) => loadConfigText(text, 'routes.yaml', env);

  it('turns a plain ${VAR} into a number inside a flow mapping', () => {
    const config = load(withGatewayLine('  limits: { maxHeaderBytes: ${MAX_HEADER_BYTES} }'), { MAX_HEADER_BYTES: '20000' });
    assert.equal(config.gateway.limits.maxHeaderBytes, 20000);
  });

  it('turns a plain ${VAR:-default} into a boolean, from the env or the default', () => {
    const text = withGatewayLine('  routingHeaders: ${ROUTING_HEADERS:-false}');
    assert.equal(load(text, { ROUTING_HEADERS: 'true' }).gateway.routingHeaders, true);
    assert.equal(load(text, {}).gateway.routingHeaders, false);
  });

  it('keeps a quoted ${VAR} a string', () => {
    assert.equal(load(withGatewayLine('  adminToken: "${TOKEN}"'), { TOKEN: '12345' }).gateway.adminToken, '12345');
  });

  it('keeps the text of an unquoted ${VAR} where a string is expected, whatever YAML would read it as', () => {
    for (const token of ['12345', '0123', '0x1F', '0o17', '1e3', 'null', '~', 'true', '.inf']) {
      assert.equal(load(withGatewayLine('  adminToken: ${TOKEN:-}'), { TOKEN: token }).gateway.adminToken, token);
    }
  });

  it('keeps the text of an unquoted ${VAR} in header values, and numbers where a number or status code is expected', () => {
    const text = `${editConfig('{ address: 127.0.0.1:9001, zone: sh-a }', '{ address: 127.0.0.1:9001, zone: sh-a, weight: ${W} }')}` +
      '    retries: { on: [${CODE}], maxRetries: ${ATTEMPTS} }\n' +
      '    fallback: { status: ${STATUS}, headers: { x-version: ${VERSION} }, json: { count: ${COUNT} } }\n';
    const env = { W: '2.5', CODE: '503', ATTEMPTS: '0x3', STATUS: '429', VERSION: '2', COUNT: '7' };
    const config = load(text, env);
    const route = config.routes[0]!;
    assert.equal(config.discovery.static['orders']?.[0]?.weight, 2.5);
    assert.deepEqual([route.retries.on, route.retries.maxRetries], [[503], 3]);
    // free-form json is read as YAML would read it
    assert.deepEqual(route.fallback, { status: 429, headers: { 'x-version': '2' }, json: { count: 7 } });
  });

  it('still reports a substituted number out of range where a number is expected, at the placeholder', () => {
    const error = configErrorOf(withGatewayLine('  limits: { maxHeaderBytes: ${MAX_HEADER_BYTES} }'), { MAX_HEADER_BYTES: '20' });
    assertIssue(error, 3, 29, 'gateway.limits.maxHeaderBytes: expected at least 1024, got 20');
  });

  it('says to quote a literal number where text is expected, without echoing a token', () => {
    const error = configErrorOf(withGatewayLine('  adminToken: 12345'));
    assertIssue(error, 3, 15, 'gateway.adminToken: expected a string, got a number (quote it to keep it as text)');
    assert.doesNotMatch(error.format(), /12345/);
  });

  it('never lets a value add YAML structure', () => {
    const config = load(withGatewayLine('  adminToken: ${TOKEN}'), { TOKEN: 'a: b # c' });
    assert.equal(config.gateway.adminToken, 'a: b # c');
  });

  it('gives the empty string for ${X:-}, not null', () => {
    assert.equal(load(withGatewayLine('  adminToken: ${TOKEN:-}'), {}).gateway.adminToken, '');
  });

  it('keeps $${ literal through the loader', () => {
    assert.equal(load(withGatewayLine('  adminToken: $${TOKEN}'), { TOKEN: 'x' }).gateway.adminToken, '${TOKEN}');
  });

  it('ignores placeholders in comments', () => {
    assert.equal(load(editConfig('  zone: sh-a', '  zone: sh-a  # ${NOT_SET}'), {}).gateway.zone, 'sh-a');
  });

  it('substitutes inside flow sequences and keeps defaults containing indicators', () => {
    const config = load(withGatewayLine('  trustedProxies: [${PROXY_A}, ${PROXY_B:-10.0.0.0/8}]'), { PROXY_A: '192.168.0.0/16' });
    assert.deepEqual(config.gateway.trustedProxies, ['192.168.0.0/16', '10.0.0.0/8']);
  });

  it('points at a malformed placeholder inside a quoted scalar', () => {
    const error = configErrorOf(withGatewayLine('  adminToken: "x ${BAD-NAME}"'), {});
    assertIssue(error, 3, 18, 'gateway.adminToken: malformed "${BAD-NAME}"');
  });
});
