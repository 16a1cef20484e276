// The files generated from src/config/schema.ts (`npm run docs`): docs/configuration.md and routes.schema.json.
// They fail here when they are out of date, when a key has no description or no example, and when the JSON
// Schema's patterns disagree with what the config loader accepts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { configKeys, exampleOf, type SchemaNode } from '../../scripts/config-reference.ts';
import { GENERATED } from '../../scripts/docs.ts';
import { z } from 'zod';
import { configSchema, INPUT_PATTERNS } from '../../src/config/schema.ts';

const REPO = join(import.meta.dirname, '../..');

describe('files generated from the config schema', () => {
  for (const [file, render] of Object.entries(GENERATED)) {
    it(`${file} is up to date (npm run docs)`, async () => {
      assert.equal(await readFile(join(REPO, file), 'utf8'), render(), `${file} differs from what npm run docs writes`);
    });
  }

  it('describes every key, and shows a default or an example for every key that is not a section', () => {
    const keys = configKeys();
    assert.ok(keys.length > 80, `walked ${keys.length} keys`);
    const undescribed = keys.filter((key) => !key.node.description?.trim()).map((key) => key.path);
    assert.deepEqual(undescribed, [], 'keys without .describe() in src/config/schema.ts');
    const withoutExample = keys.filter((key) => key.node.properties === undefined && exampleOf(key.node) === undefined).map((key) => key.path);
    assert.deepEqual(withoutExample, [], 'keys with neither a default nor examples');
  });

  it('gives every key of the schema a heading of its own in docs/configuration.md', async () => {
    const reference = await readFile(join(REPO, 'docs/configuration.md'), 'utf8');
    const headings = new Set([...reference.matchAll(/^#{2,3} `([^`]+)`$/gm)].map((m) => m[1]));
    assert.deepEqual(configKeys().map((key) => key.path).filter((path) => !headings.has(path)), []);
  });

  it('is what `zonegate schema` prints', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, ['src/cli.ts', 'schema'], { cwd: REPO });
    assert.equal(stdout, await readFile(join(REPO, 'routes.schema.json'), 'utf8'));
  });

  it('is named by the example routes.yaml for editors', async () => {
    const [first] = (await readFile(join(REPO, 'routes.yaml'), 'utf8')).split('\n');
    assert.equal(first, '# yaml-language-server: $schema=routes.schema.json');
  });
});

describe('the JSON Schema patterns', () => {
  const schema = JSON.parse(GENERATED['routes.schema.json']()) as SchemaNode;
  const patternOf = (path: string): string => {
    const key = configKeys(schema).find((candidate) => candidate.path === path);
    const node = key?.node.items ?? key?.node;
    assert.ok(node?.pattern, `${path} has a pattern`);
    return node.pattern;
  };
  /** The zod schema of one key, as the loader applies it. */
  const zodAt = (path: string): z.ZodType => {
    let schema: unknown = configSchema;
    for (const step of path.replace(/\[\]/g, '.[]').split('.')) {
      while (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) schema = schema.unwrap();
      schema = step === '[]' ? (schema as z.ZodArray).element : (schema as z.ZodObject).shape[step];
    }
    return schema as z.ZodType;
  };
  const cases: Record<keyof typeof INPUT_PATTERNS, { path: string; good: string[]; bad: string[] }> = {
    duration: { path: 'routes[].timeout', good: ['250ms', '5s', '1.5m', '2h'], bad: ['5 sec', '5', '5S', 's', '1d', ' 5s'] },
    rate: { path: 'routes[].rateLimit.rate', good: ['100/s', '6000/m', '2.5/h'], bad: ['100 per second', '100', '100/d', '/s'] },
    'host:port': { path: 'gateway.listen', good: ['0.0.0.0:8080', ':8080', '[::1]:9901', 'gw.internal:80'], bad: ['8080', 'localhost', 'http://x:1', '[::1]'] },
    'Consul address': { path: 'discovery.consul.address', good: ['http://127.0.0.1:8500', 'https://consul:8501', 'consul:8500'], bad: ['http://consul:8500/v1', 'a b'] },
    'Redis address': { path: 'redis.url', good: ['redis://127.0.0.1:6379', 'rediss://u:p@r:6380/2', 'redis:6379', '6379', '/run/redis.sock'], bad: ['redis server', 'http://x/'] },
    'IP or CIDR': { path: 'gateway.trustedProxies[]', good: ['10.0.0.0/8', '127.0.0.1', 'fd00::/8'], bad: ['10.0.0.0/8 ', 'proxy.internal'] },
  };
  for (const [kind, { path, good, bad }] of Object.entries(cases)) {
    it(`${kind}: lets pass what zonegate accepts and \${placeholders}, flags what it refuses`, () => {
      const source = patternOf(path.replace(/\[\]$/, ''));
      assert.ok(source.startsWith(INPUT_PATTERNS[kind as keyof typeof INPUT_PATTERNS]), source);
      const pattern = new RegExp(source, 'u');
      const key = zodAt(path);
      for (const text of good) {
        assert.match(text, pattern, `${path}: ${text}`);
        assert.ok(key.safeParse(text).success, `zonegate accepts ${path}: ${text}`);
      }
      for (const text of bad) {
        assert.doesNotMatch(text, pattern, `${path}: ${text}`);
        assert.equal(key.safeParse(text).success, false, `zonegate refuses ${path}: ${text}`);
      }
      assert.match('${VALUE:-x}', pattern, 'a placeholder is replaced when the file loads');
    });
  }
});
