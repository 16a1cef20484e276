// README.md, CHANGELOG.md and docs/: every link stays in the repo and lands on a file and heading that exist, the
// README's quick start is a config zonegate accepts, and the pages the docs promise are there.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { describe, it } from 'node:test';
import { loadConfigFile } from '../../src/config/load.ts';

const REPO = join(import.meta.dirname, '../..');
const PAGES = ['README.md', 'CHANGELOG.md', ...(await readdir(join(REPO, 'docs'))).filter((file) => file.endsWith('.md')).map((file) => `docs/${file}`)];

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replace(/ /g, '-');
}

async function anchorsOf(file: string): Promise<Set<string>> {
  const text = (await readFile(join(REPO, file), 'utf8')).replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));
}

describe('the documentation', () => {
  it('has a page per topic', () => {
    for (const page of ['configuration', 'routing', 'resilience', 'rate-limits', 'discovery', 'operations', 'performance', 'drills']) {
      assert.ok(PAGES.includes(`docs/${page}.md`), `docs/${page}.md`);
    }
  });

  for (const page of PAGES) {
    it(`${page}: links only inside the repo, to files and headings that exist`, async () => {
      const text = (await readFile(join(REPO, page), 'utf8')).replace(/```[\s\S]*?```/g, '');
      const links = [...text.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]!);
      for (const link of links) {
        assert.doesNotMatch(link, /^[a-z]+:/i, `${page}: ${link} leaves the repo`);
        const [path = '', anchor] = link.split('#');
        const target = path === '' ? page : relative(REPO, join(REPO, dirname(page), path));
        assert.ok(!target.startsWith('..') && existsSync(join(REPO, target)), `${page}: ${link} names ${target}, which is not in the repo`);
        if (anchor !== undefined) assert.ok((await anchorsOf(target)).has(anchor), `${page}: ${link}: no heading #${anchor} in ${target}`);
      }
      assert.doesNotMatch(text, /DESIGN\.md|\.\.\/shared/, `${page} names no file outside the repo`);
    });
  }

  it("README's quick start is a routes.yaml zonegate accepts", async () => {
    const readme = await readFile(join(REPO, 'README.md'), 'utf8');
    const quickStart = readme.slice(readme.indexOf('## Quick start'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(quickStart)?.[1];
    assert.ok(yaml, 'a yaml block in the quick start');
    assert.ok(yaml.trimEnd().split('\n').length <= 20, 'about 20 lines');
    const dir = await mkdtemp(join(tmpdir(), 'zonegate-readme-'));
    try {
      await writeFile(join(dir, 'routes.yaml'), yaml);
      const config = await loadConfigFile(join(dir, 'routes.yaml'));
      assert.equal(config.routes[0]?.service, 'orders');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
