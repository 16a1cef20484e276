// Zod issues in a few words, for the log lines that say why something read from outside was refused.
import type { z } from 'zod';

/** What is wrong with a value, in a few words: the first issues zod found, each with where. */
export function describeIssues(error: z.ZodError, prefix = ''): string {
  const issues = error.issues.slice(0, 3).map((issue) => {
    const where = [prefix, ...issue.path.map((key) => (typeof key === 'number' ? `[${key}]` : `.${String(key)}`))].join('');
    return where === '' ? issue.message : `${where.replace(/^\./, '')}: ${issue.message}`;
  });
  const more = error.issues.length - issues.length;
  return issues.join('; ') + (more > 0 ? ` (and ${more} more)` : '');
}
