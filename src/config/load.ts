// routes.yaml → Config, or a ConfigError listing every problem with its place in the original file.
import { readFile } from 'node:fs/promises';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, visit } from 'yaml';
import type { Document, YAMLError } from 'yaml';
import type { z } from 'zod';
import { configSchema } from './schema.ts';
import type { Config } from './schema.ts';
import { crossCheck } from './checks.ts';
import { ConfigError, configErrorMap, describeValue, formatConfigPath, schemaAccepts, unknownKeyMessage, withInput, withPath } from './errors.ts';
import type { ConfigIssue, ConfigPath, ConfigPathIssue } from './errors.ts';
import { interpolateDocument, maskPlaceholders, pairKeyText, unmaskPlaceholders } from './interpolate.ts';
import type { Env } from './interpolate.ts';
import { MAX_NESTING, preflight } from './preflight.ts';

/** Problems listed at most: past this, one line says how many more there are. */
const MAX_ISSUES = 50;
/** How the parser's own recursion failing reads (V8's RangeError, and the regex engine's). */
const STACK_EXHAUSTED = /Maximum call stack size exceeded|Stack overflow/i;

export interface LoadedConfig {
  readonly config: Config;
  /** the file text the config came from: what `watchConfig` compares to tell whether the file changed */
  readonly text: string;
}

export function loadConfigText(fileText: string, file: string, env: Env = process.env): Config {
  // a byte-order mark is not part of the first line's columns
  const text = fileText.charCodeAt(0) === 0xfeff ? fileText.slice(1) : fileText;
  const refused = preflight(text);
  if (refused !== undefined) throw new ConfigError([{ file, ...positionOf(text, refused.offset), message: refused.message }]);
  try {
    return parseConfigText(text, file, env);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    // a limit of the parser the preflight did not foresee: one sentence, never a stack
    const reason = error instanceof Error && STACK_EXHAUSTED.test(error.message) ? TOO_DEEP : `the file could not be read as YAML (${String(error)})`;
    throw new ConfigError([{ file, line: 1, col: 1, message: reason }]);
  }
}

const TOO_DEEP = `collections are nested too deeply to be read; a routes file needs far fewer than ${MAX_NESTING} levels`;

/** 1-based line and column of `offset`, counted the way LineCounter counts. */
function positionOf(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset);
  const lastNewline = before.lastIndexOf('\n');
  return { line: before.split('\n').length, col: offset - lastNewline };
}

function parseConfigText(text: string, file: string, env: Env): Config {
  const lineCounter = new LineCounter();
  // merge keys (`<<: *defaults`), as in docker-compose files: routes that differ in a key or two share the rest
  const doc = parseDocument(maskPlaceholders(text), { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const issueAt = (offset: number, message: string): ConfigIssue => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line: Math.max(line, 1), col: Math.max(col, 1), message };
  };

  const exhausted = doc.errors.find((error) => STACK_EXHAUSTED.test(error.message));
  if (exhausted !== undefined) throw new ConfigError([issueAt(exhausted.pos[0], TOO_DEEP)]);
  const issues = doc.errors.map((error) => issueAt(error.pos[0], yamlErrorMessage(error, doc, text)));
  // e.g. an unknown tag (`!env NAME`), which the parser would otherwise read as the plain text after it
  issues.push(...doc.warnings.map((warning) => issueAt(warning.pos[0], `YAML: ${unmaskPlaceholders(warning.message)}`)));
  const interpolation = interpolateDocument(doc, text, env, schemaAccepts);
  issues.push(...interpolation.map((problem) => issueAt(problem.offset, withPath(problem.path, problem.message))));

  // a broken tree only yields noise from the schema; duplicate keys leave the tree whole
  const treeIsWhole = doc.errors.every((error) => error.code === 'DUPLICATE_KEY');
  if (treeIsWhole) {
    const located = (issue: ConfigPathIssue): ConfigIssue => issueAt(nodeOffset(doc, issue), withPath(issue.path, issue.message));
    const substitutionFailed = new Set(interpolation.map((problem) => formatConfigPath(problem.path)));
    const parsed = validate(doc);
    if (parsed.success) {
      if (issues.length === 0) issues.push(...crossCheck(parsed.data).map(located));
      if (issues.length === 0) return parsed.data;
    } else {
      const schemaIssues = parsed.issues.filter((issue) => !substitutionFailed.has(formatConfigPath(issue.path)));
      issues.push(...schemaIssues.map(located));
    }
  }
  throw new ConfigError(listed(issues.sort((a, b) => a.line - b.line || a.col - b.col)));
}

/** Each problem once (a parser can report one place many times), and at most MAX_ISSUES of them. */
function listed(issues: readonly ConfigIssue[]): ConfigIssue[] {
  const byPlace = new Map<string, ConfigIssue>();
  for (const issue of issues) byPlace.set(`${issue.line}:${issue.col}:${issue.message}`, issue);
  const unique = [...byPlace.values()];
  if (unique.length <= MAX_ISSUES) return unique;
  const last = unique[MAX_ISSUES - 1]!;
  const more = unique.length - MAX_ISSUES + 1;
  return [...unique.slice(0, MAX_ISSUES - 1), { ...last, message: `… and ${more} more problems after this line (fix these first)` }];
}

export async function loadConfigFile(path: string, env: Env = process.env): Promise<Config> {
  return (await loadConfigFileWithText(path, env)).config;
}

/** Like loadConfigFile, also returning the text, to seed `watchConfig`. */
export async function loadConfigFileWithText(path: string, env: Env = process.env): Promise<LoadedConfig> {
  const text = await readConfigText(path);
  return { config: loadConfigText(text, path, env), text };
}

/** Reads the file; a read failure becomes a ConfigError at 1:1 naming the file. */
export async function readConfigText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error && 'code' in error && error.code === 'ENOENT' ? 'no such file' : String(error);
    throw new ConfigError([{ file: path, line: 1, col: 1, message: `cannot read config file: ${reason}` }]);
  }
}

type Validation = { success: true; data: Config } | { success: false; issues: ConfigPathIssue[] };

function validate(doc: Document.Parsed): Validation {
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    // e.g. the alias-expansion limit that guards against "billion laughs" files
    return { success: false, issues: [{ path: [], message: error instanceof Error ? error.message : String(error) }] };
  }
  const result = configSchema.safeParse(data, { error: configErrorMap, reportInput: true });
  if (result.success) return { success: true, data: result.data };
  return { success: false, issues: result.error.issues.flatMap(toPathIssues) };
}

function toPathIssues(issue: z.core.$ZodIssue): ConfigPathIssue[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: [...issue.path, key], atKey: true, message: unknownKeyMessage(issue.path, key) }));
  }
  // zod puts the offending key itself at the end of the path
  if (issue.code === 'invalid_key') return [{ path: issue.path, atKey: true, message: issue.message }];
  if (issue.path.length === 0 && issue.code === 'invalid_type') {
    return [{ path: [], message: `expected a mapping with gateway, topology and routes, got ${issue.input === null ? 'an empty file' : describeValue(issue.input)}` }];
  }
  return [{ path: issue.path, message: withInput(issue.message, issue.input, issue.path) }];
}

/**
 * The file offset of the node a config path names. A path that runs past the document (a missing key)
 * stops at the deepest node that exists: the mapping the key is missing from.
 */
function nodeOffset(doc: Document.Parsed, issue: ConfigPathIssue): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const [depth, segment] of issue.path.entries()) {
    const isLast = depth === issue.path.length - 1;
    if (isMap(node)) {
      const pair = node.items.find((item) => pairKeyText(item.key) === String(segment));
      if (!pair) break;
      const value = rangeStart(pair.value);
      if ((isLast && issue.atKey) || value === undefined) return rangeStart(pair.key) ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      node = node.items[segment];
    } else {
      break;
    }
    offset = rangeStart(node) ?? offset;
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  if (typeof node !== 'object' || node === null || !('range' in node) || !Array.isArray(node.range)) return undefined;
  const start: unknown = node.range[0];
  return typeof start === 'number' ? start : undefined;
}

function yamlErrorMessage(error: YAMLError, doc: Document.Parsed, text: string): string {
  if (error.code === 'DUPLICATE_KEY') return `duplicate key ${JSON.stringify(keyAt(doc, text, error.pos[0]))}`;
  if (error.code === 'MULTIPLE_DOCS') {
    return 'a second YAML document starts here; a routes file is one document: remove the "---" (or "...") line that separates them and merge the parts';
  }
  return `YAML syntax: ${unmaskPlaceholders(error.message)}`;
}

/** The mapping key that starts at `offset`, as written (before substitution). */
function keyAt(doc: Document.Parsed, text: string, offset: number): string {
  let found: string | undefined;
  visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || pair.key.range?.[0] !== offset) return undefined;
      found = unmaskPlaceholders(String(pair.key.value));
      return visit.BREAK;
    },
  });
  return found ?? /^[^:\n]*/.exec(text.slice(offset))![0].trim();
}
