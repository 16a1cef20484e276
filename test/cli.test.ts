// The command line itself: what a mistyped command line answers.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';

const REPO = join(import.meta.dirname, '..');

async function zonegate(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['src/cli.ts', ...args], { cwd: REPO });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const { code, stdout, stderr } = err as { code: number; stdout: string; stderr: string };
    return { code, stdout, stderr };
  }
}

describe('zonegate command line', () => {
  for (const args of [['run', '--bogus'], ['explain', '--path']]) {
    it(`answers "${args.join(' ')}" with what is wrong and the usage, exit 2, no stack`, async () => {
      const { code, stderr } = await zonegate(...args);
      assert.equal(code, 2);
      const [first, second] = stderr.split('\n');
      assert.match(first!, args[1] === '--bogus' ? /^Unknown option '--bogus'$/ : /--path.*argument missing/);
      assert.equal(second, 'usage:');
      assert.doesNotMatch(stderr, /\n\s+at /, 'no stack trace');
    });
  }
});
