// `${VAR}` / `${VAR:-default}` substitution on the parsed YAML tree rather than on the raw text: the values
// cannot inject YAML structure, comments are left alone, and every node keeps its position in the original file.
import { isMap, isScalar, isSeq } from 'yaml';
import type { Document, Scalar, ScalarTag, CollectionTag, Schema } from 'yaml';
import type { ConfigPath } from './errors.ts';

export type Env = Readonly<Record<string, string | undefined>>;

export interface PlaceholderProblem {
  /** the placeholder as written, e.g. `${PORT}` */
  readonly placeholder: string;
  /** where the placeholder starts in the input string */
  readonly index: number;
  readonly message: string;
}

export interface Substitution {
  readonly value: string;
  readonly problems: readonly PlaceholderProblem[];
}

const PLACEHOLDER = /\$\$\{|\$\{([^}]*)(\}?)/g;
const PLACEHOLDER_BODY = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s;

/** Replaces placeholders in one string; `$${` stands for a literal `${`. */
export function substitute(text: string, env: Env): Substitution {
  const problems: PlaceholderProblem[] = [];
  const value = text.replace(PLACEHOLDER, (placeholder: string, body: string | undefined, close: string, index: number) => {
    if (body === undefined) return '${';
    const problem = (message: string): string => {
      problems.push({ placeholder, index, message });
      return placeholder;
    };
    if (close === '') return problem(`unterminated "${placeholder}": expected \${NAME} or \${NAME:-default}`);
    if (body.includes('${')) return problem(`nested placeholders are not supported: "${placeholder}"`);
    const parsed = PLACEHOLDER_BODY.exec(body);
    if (!parsed) return problem(`malformed "${placeholder}": expected \${NAME} or \${NAME:-default}`);
    const name = parsed[1]!;
    const fallback = parsed[2];
    const set = env[name];
    if (fallback !== undefined) return set === undefined || set === '' ? fallback : set;
    if (set === undefined) return problem(`environment variable ${name} is not set (write \${${name}:-default} to allow that)`);
    return set;
  });
  return { value, problems };
}

// Inside a flow collection (`{ port: ${PORT} }`) the braces of a placeholder would end the mapping. Before
// parsing, each placeholder's YAML indicator characters are swapped for private-use code points (one UTF-16 unit
// each, so every offset stays the same) and swapped back in each scalar before substitution.
const INDICATORS = '{}[],:#';
const MASKS = [...INDICATORS].map((_, i) => String.fromCharCode(0xe000 + i)).join('');
const MASKED_PLACEHOLDER = new RegExp('\\$' + MASKS[0] + '[^' + MASKS[1] + '\\n]*' + MASKS[1], 'g');

function translate(text: string, from: string, to: string): string {
  let out = '';
  for (const char of text) {
    const index = from.indexOf(char);
    out += index < 0 ? char : to[index];
  }
  return out;
}

/** The text to hand to the YAML parser: placeholders made safe in flow context, same length as `text`. */
export function maskPlaceholders(text: string): string {
  return text.replace(/\$\{[^}\n]*\}/g, (placeholder) => translate(placeholder, INDICATORS, MASKS));
}

export function unmaskPlaceholders(text: string): string {
  return text.replace(MASKED_PLACEHOLDER, (masked) => translate(masked, MASKS, INDICATORS));
}

export interface InterpolationProblem {
  /** offset into the original file text */
  readonly offset: number;
  readonly path: ConfigPath;
  readonly message: string;
}

/** The text a mapping key contributes to a config path. */
export function pairKeyText(key: unknown): string {
  return isScalar(key) ? String(key.value) : String(key);
}

/**
 * Whether the config takes `value` at `path` as it is: true or false where the config has a type for the
 * spot, undefined where it takes free-form data (or has no such key).
 */
export type Accepts = (path: ConfigPath, value: unknown) => boolean | undefined;

/**
 * Substitutes every scalar of a document parsed from `maskPlaceholders(source)` in place; nodes with a
 * problem keep their original text. An unquoted placeholder whose value reads as a YAML number, boolean or null
 * gives that value only where the config does not take the text itself (`accepts`): `weight: ${WEIGHT}` is a number,
 * `adminToken: ${TOKEN}` stays the token's text, whatever it looks like.
 */
export function interpolateDocument(doc: Document.Parsed, source: string, env: Env, accepts: Accepts = () => undefined): InterpolationProblem[] {
  const problems: InterpolationProblem[] = [];
  const visit = (node: unknown, path: ConfigPath, isKey = false): void => {
    if (isScalar(node)) {
      // a mapping key is always text
      const typed = (text: string): unknown => readPlain(text, doc.schema, (value) => isKey || accepts(path, value));
      problems.push(...interpolateScalar(node, source, env, typed).map((p) => ({ ...p, path })));
    } else if (isMap(node)) {
      /** each key as substituted → as written */
      const keys = new Map<string, string>();
      for (const pair of node.items) {
        const written = unmaskPlaceholders(pairKeyText(pair.key));
        // a problem in the key itself is reported under the key as written
        visit(pair.key, [...path, written], true);
        const key = pairKeyText(pair.key);
        // The parser caught keys written the same twice; this catches keys that substitution made equal.
        const earlier = keys.get(key);
        if (earlier !== undefined && earlier !== written) {
          const offset = isScalar(pair.key) ? (pair.key.range?.[0] ?? 0) : 0;
          problems.push({ offset, path, message: `duplicate key ${JSON.stringify(key)} (${earlier} and ${written} after substitution)` });
        }
        keys.set(key, written);
        // the value's path uses the key as substituted
        visit(pair.value, [...path, key]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, index) => visit(item, [...path, index]));
    }
  };
  visit(doc.contents, []);
  return problems;
}

function interpolateScalar(node: Scalar, source: string, env: Env, typed: (text: string) => unknown): Array<{ offset: number; message: string }> {
  if (typeof node.value !== 'string') return [];
  const text = unmaskPlaceholders(node.value);
  node.value = text;
  if (!text.includes('${')) return [];
  const { value, problems } = substitute(text, env);
  if (problems.length > 0) {
    return problems.map((problem) => ({ offset: placeholderOffset(node, text, source, problem), message: problem.message }));
  }
  // a plain `${PORT}` is written where a number or boolean belongs; a quoted one asks for a string
  const isPlainUntagged = node.type === 'PLAIN' && !node.tag;
  node.value = isPlainUntagged && value !== '' ? typed(value) : value;
  return [];
}

/**
 * What a plain scalar's substituted text stands for: the text, unless it reads as a number, boolean or null and
 * the config does not take the text there, or takes free-form data there. So `TOKEN=0x1F` stays "0x1F" for a string key.
 */
function readPlain(text: string, schema: Schema, acceptsAsIs: (value: unknown) => boolean | undefined): unknown {
  const resolved = resolveCoreScalar(text, schema);
  if (resolved === text || typeof resolved === 'string') return resolved;
  return acceptsAsIs(text) === true ? text : resolved;
}

/**
 * Finds the placeholder in the node's source text, so the position stays right even when an earlier
 * substitution on the same line changed its length or the scalar is quoted; falls back to the node start.
 */
function placeholderOffset(node: Scalar, text: string, source: string, problem: PlaceholderProblem): number {
  const [start, end] = node.range ?? [0, 0];
  const raw = source.slice(start, end);
  const occurrence = occurrencesBefore(text, problem.placeholder, problem.index);
  let found = -1;
  for (let i = 0; i <= occurrence; i++) {
    found = raw.indexOf(problem.placeholder, found + 1);
    if (found < 0) return start;
  }
  return start + found;
}

function occurrencesBefore(text: string, needle: string, index: number): number {
  let count = 0;
  for (let at = text.indexOf(needle); at >= 0 && at < index; at = text.indexOf(needle, at + 1)) count++;
  return count;
}

function isScalarTag(tag: CollectionTag | ScalarTag): tag is ScalarTag {
  return !tag.collection;
}

/** Resolves text the way a plain scalar would have been in the YAML core schema (numbers, booleans, null). */
function resolveCoreScalar(text: string, schema: Schema): unknown {
  const tag = schema.tags.filter(isScalarTag).find((t) => t.default === true && t.test?.test(text));
  if (!tag) return text;
  const resolved = tag.resolve(text, () => undefined, {});
  return isScalar(resolved) ? resolved.value : resolved;
}
