// What `validate` says about files that are no routes file at all: nesting past any config's needs (5,000 `[` used to
// overflow the parser's stack and print 760 identical lines), binary data (its bytes never echoed), several YAML
// documents (a sentence, not the library's advice). One clear line each, no stack, through the CLI too.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { loadConfigText } from '../../src/config/load.ts';
import { MAX_NESTING } from '../../src/config/preflight.ts';
import { MINIMAL_CONFIG, assertIssue, configErrorOf, editConfig, makeTempDir, type TempDir } from './fixtures/config-files.ts';

const REPO = join(import.meta.dirname, '..', '..');

function deepIndentation(levels: number): string {
  return Array.from({ length: levels }, (_, i) => `${' '.repeat(i)}k:`).join('\n');
}

describe('validate: nesting depth', () => {
  const tooDeep: [what: string, text: string][] = [
    ['5,000 nested [', '['.repeat(5000)],
    ['5,000 nested flow maps', '{a: '.repeat(5000)],
    ['a line of 5,000 "- "', `${'- '.repeat(5000)}x`],
    ['3,000 levels of indentation', deepIndentation(3000)],
    ['nesting inside a valid start', `${MINIMAL_CONFIG}extra: ${'['.repeat(200)}`],
  ];
  for (const [what, text] of tooDeep) {
    it(`refuses ${what} with one clear problem`, () => {
      const error = configErrorOf(text);
      assert.equal(error.issues.length, 1, error.format());
      assert.match(error.issues[0]!.message, new RegExp(`nested more than ${MAX_NESTING} levels deep`));
      assert.doesNotMatch(error.format(), /call stack|Stack overflow|regular expression/i);
    });
  }

  it('accepts a config nested as deep as a real one, with brackets in block text and quotes', () => {
    const json = `${'{"a": '.repeat(20)}1${'}'.repeat(20)}`;
    const text = editConfig(
      '    service: orders\n',
      `    service: orders\n    fallback:\n      status: 503\n      json: ${json}\n      headers: { x-note: "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[" }\n` +
        `  - name: notes\n    match: { prefix: /notes }\n    service: orders\n    fallback:\n      body: |\n        ${'['.repeat(100)}\n        ${'{'.repeat(100)}\n`,
    );
    const config = loadConfigText(text, 'routes.yaml', {});
    assert.equal(config.routes.length, 2);
    assert.equal(config.routes[1]!.fallback!.body, `${'['.repeat(100)}\n${'{'.repeat(100)}\n`);
  });
});

describe('validate: binary input', () => {
  for (const [what, bytes] of [
    ['random bytes', Buffer.concat([Buffer.from([0x00, 0xff, 0xfe]), randomBytes(300)])],
    ['invalid UTF-8 in a YAML-looking file', Buffer.concat([Buffer.from('gateway:\n  zone: '), Buffer.from([0xc3, 0x28, 0xa0]), Buffer.from('\n')])],
    ['a NUL byte after valid lines', Buffer.from(`${MINIMAL_CONFIG}\u0000`)],
  ] as const) {
    it(`reports ${what} as not text, without echoing a byte`, () => {
      const error = configErrorOf(bytes.toString('utf8'));
      assert.equal(error.issues.length, 1, error.format());
      assert.match(error.issues[0]!.message, /not a text file/);
      assert.match(error.format(), /^[\x20-\x7e]+$/, 'printable ASCII only');
    });
  }

  it('names the line of the first byte that is not text', () => {
    assertIssue(configErrorOf(`${MINIMAL_CONFIG}\u0007`), 13, 1, 'not a text file');
  });
});

describe('validate: several YAML documents', () => {
  it('says in words that a routes file is one document, where the second starts', () => {
    const error = configErrorOf(`${MINIMAL_CONFIG}---\nroutes: []\n`);
    assertIssue(error, 13, 1, 'a second YAML document starts here');
    assert.doesNotMatch(error.format(), /parseAllDocuments|YAML\./);
  });

  it('accepts a single document that starts with ---', () => {
    assert.equal(loadConfigText(`---\n${MINIMAL_CONFIG}`, 'routes.yaml', {}).routes.length, 1);
  });
});

describe('zonegate validate on such files', () => {
  let temp: TempDir;
  before(async () => {
    temp = await makeTempDir();
  });
  after(() => temp.remove());

  async function validate(name: string, content: string | Buffer): Promise<{ code: number; stdout: string; stderr: string }> {
    const path = await temp.write(name, content as string);
    try {
      const { stdout, stderr } = await promisify(execFile)(process.execPath, ['src/cli.ts', 'validate', path], { cwd: REPO });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
      return { code, stdout, stderr };
    }
  }

  for (const [name, content] of [
    ['nested.yaml', '['.repeat(5000)],
    ['binary.yaml', Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0x00]), randomBytes(500)])],
    ['multi.yaml', `${MINIMAL_CONFIG}---\n${MINIMAL_CONFIG}`],
  ] as const) {
    it(`${name}: one line naming file:line:col, exit 1, no stack`, async () => {
      const { code, stderr } = await validate(name, content);
      assert.equal(code, 1);
      const lines = stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, stderr);
      assert.match(lines[0]!, new RegExp(`${name}:\\d+:\\d+: `));
      assert.doesNotMatch(stderr, /\n\s+at |call stack|parseAllDocuments/);
      assert.match(stderr, /^[\x20-\x7e\n]+$/, 'printable ASCII only');
    });
  }
});

describe('validate: many problems', () => {
  it('lists the first 49 and says how many more follow', () => {
    const unknown = Array.from({ length: 60 }, (_, i) => `  unknownKey${i}: 1`).join('\n');
    const error = configErrorOf(editConfig('  zone: sh-a\n', `  zone: sh-a\n${unknown}\n`));
    assert.equal(error.issues.length, 50);
    assert.match(error.issues[49]!.message, /^… and 11 more problems after this line/);
  });
});
