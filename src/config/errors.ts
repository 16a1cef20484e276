// Config errors a user can act on: each names the file, line, column, the config path and what was expected.
import { z } from 'zod';
import { maskUserinfo } from './endpoints.ts';
import { configSchema } from './schema.ts';

export interface ConfigIssue {
  readonly file: string;
  /** 1-based */
  readonly line: number;
  /** 1-based */
  readonly col: number;
  readonly message: string;
}

export type ConfigPath = readonly PropertyKey[];

/** A problem found on the parsed config, before it is given a position in the file. */
export interface ConfigPathIssue {
  readonly path: ConfigPath;
  readonly message: string;
  /** point at the key of the last path element instead of its value (unknown keys, duplicate names) */
  readonly atKey?: boolean;
}

export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(`invalid config (${count}):\n${formatIssues(issues)}`);
    this.name = 'ConfigError';
    this.issues = issues;
  }

  /** One `file:line:col: message` per line, the form editors and CI annotate. */
  format(): string {
    return formatIssues(this.issues);
  }
}

function formatIssues(issues: readonly ConfigIssue[]): string {
  return issues.map((issue) => `${issue.file}:${issue.line}:${issue.col}: ${issue.message}`).join('\n');
}

const PLAIN_KEY = /^[A-Za-z_][\w-]*$/;

/** `routes[0].match`, `discovery.static["a.b"][1]`: the path as a user would type it to find the spot. */
export function formatConfigPath(path: ConfigPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (PLAIN_KEY.test(String(segment))) text += text === '' ? String(segment) : `.${String(segment)}`;
    else text += `[${JSON.stringify(String(segment))}]`;
  }
  return text;
}

export function withPath(path: ConfigPath, message: string): string {
  return path.length === 0 ? message : `${formatConfigPath(path)}: ${message}`;
}

/** Keys whose values are credentials: a message names only the kind of value found there, never the value. */
const SECRET_PATHS: ReadonlySet<string> = new Set(['gateway.adminToken', 'discovery.consul.token']);

export function isSecretPath(path: ConfigPath): boolean {
  return SECRET_PATHS.has(formatConfigPath(path));
}

/** characters of a string value a message shows at most: a whole file read as one scalar would fill the terminal */
const MAX_SHOWN = 120;

/**
 * How a YAML value is named in a message: strings quoted (a URL's password masked), collections by kind; at a
 * secret path, scalars only by kind, since messages end up in CI logs and terminals.
 */
export function describeValue(value: unknown, path: ConfigPath = []): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (isSecretPath(path) && typeof value !== 'object') return `a ${typeof value}`;
  if (typeof value === 'string') return JSON.stringify(maskUserinfo(value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value));
  if (Array.isArray(value)) return value.length === 0 ? 'an empty list' : 'a list';
  if (typeof value === 'object') return 'a mapping';
  return String(value);
}

const TYPE_NAMES: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  record: 'a mapping',
};

function listValues(values: readonly unknown[]): string {
  return values.map((v) => String(v)).join(', ');
}

/** Replaces zod's default English; messages written in the schema itself are kept (zod only asks for defaults). */
export const configErrorMap: z.core.$ZodErrorMap = (issue) => {
  const got = `, got ${describeValue(issue.input, issue.path)}`;
  switch (issue.code) {
    case 'invalid_type':
      if (issue.input === undefined) return `required key is missing (expected ${TYPE_NAMES[issue.expected] ?? issue.expected})`;
      if (issue.expected === 'string' && (typeof issue.input === 'number' || typeof issue.input === 'boolean')) {
        return `expected a string${got} (quote it to keep it as text)`;
      }
      return `expected ${TYPE_NAMES[issue.expected] ?? issue.expected}${got}`;
    case 'too_small':
      return `expected ${boundText('at least', 'more than', issue.origin, issue.minimum, issue.inclusive)}${got}`;
    case 'too_big':
      return `expected ${boundText('at most', 'less than', issue.origin, issue.maximum, issue.inclusive)}${got}`;
    case 'invalid_value':
      return issue.values.length === 1
        ? `expected ${JSON.stringify(issue.values[0])}${got}`
        : `expected one of ${listValues(issue.values)}${got}`;
    case 'invalid_format':
      if (issue.format === 'url') return `expected a URL like http://127.0.0.1:8500${got}`;
      if (issue.format === 'starts_with') return `expected a value starting with ${JSON.stringify(issue['prefix'])}${got}`;
      return `expected text matching ${issue.pattern ?? issue.format}${got}`;
    case 'invalid_union': {
      const values = issue.errors.flat().flatMap((branch) => (branch.code === 'invalid_value' ? branch.values : []));
      const everyBranchIsAValue = issue.errors.every((branch) => branch.every((i) => i.code === 'invalid_value'));
      return everyBranchIsAValue ? `expected one of ${listValues(values)}${got}` : `does not match any allowed form${got}`;
    }
    case 'invalid_key':
      return `invalid key ${describeValue(issue.input, issue.path)}: ${issue.issues.map((i) => i.message).join('; ')}`;
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
    default:
      return undefined;
  }
};

function boundText(inclusiveWord: string, exclusiveWord: string, origin: string, bound: number | bigint, inclusive = true): string {
  const word = inclusive ? inclusiveWord : exclusiveWord;
  if (origin === 'array') return `${word} ${bound} item${bound === 1 ? '' : 's'}`;
  if (origin === 'string') return bound === 1 && inclusive ? 'a non-empty string' : `${word} ${bound} characters`;
  return `${word} ${bound}`;
}

/** Schema messages like "expected an HTTP header name" gain the offending value. */
export function withInput(message: string, input: unknown, path: ConfigPath): string {
  if (!message.startsWith('expected') || message.includes(', got ') || input === undefined) return message;
  return `${message}, got ${describeValue(input, path)}`;
}

/** Keys a release renamed, by their parent's last path segment: the message names the new key and why. */
const RENAMED: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  retries: { attempts: 'maxRetries (it counts retries after the first try; the access log\'s `attempts` counts tries)' },
};

export function unknownKeyMessage(path: ConfigPath, key: string): string {
  const renamed = RENAMED[String(path.at(-1))]?.[key];
  if (renamed !== undefined) return `"${key}" is now ${renamed}`;
  const known = knownKeys(path);
  const suggestion = closest(key, known);
  if (suggestion) return `unknown key "${key}" (did you mean "${suggestion}"?)`;
  return known.length > 0 ? `unknown key "${key}" (expected one of ${known.join(', ')})` : `unknown key "${key}"`;
}

/** The keys the schema allows for the mapping at `path`. */
function knownKeys(path: ConfigPath): string[] {
  const schema = schemaAt(path);
  const target = schema && unwrapSchema(schema);
  return target instanceof z.ZodObject ? Object.keys(target.shape) : [];
}

/** The part of the schema that reads the value at `path`; undefined past a key the schema does not know. */
function schemaAt(path: ConfigPath): z.core.$ZodType | undefined {
  let schema: z.core.$ZodType | undefined = configSchema;
  for (const segment of path) schema = schema && childSchema(schema, segment);
  return schema;
}

/**
 * Whether the schema takes `value` at `path` on its own: undefined where it takes free-form data
 * (`fallback.json`) or does not know the path.
 */
export function schemaAccepts(path: ConfigPath, value: unknown): boolean | undefined {
  const schema = schemaAt(path);
  if (schema === undefined || unwrapSchema(schema) instanceof z.ZodUnknown) return undefined;
  return z.safeParse(schema, value).success;
}

function unwrapSchema(schema: z.core.$ZodType): z.core.$ZodType {
  let current = schema;
  for (;;) {
    if (current instanceof z.ZodOptional || current instanceof z.ZodDefault || current instanceof z.ZodPrefault) {
      current = current.unwrap();
    } else if (current instanceof z.ZodPipe) {
      current = current.in;
    } else {
      return current;
    }
  }
}

function childSchema(schema: z.core.$ZodType, segment: PropertyKey): z.core.$ZodType | undefined {
  const inner = unwrapSchema(schema);
  if (inner instanceof z.ZodObject) return inner.shape[String(segment)];
  if (inner instanceof z.ZodArray) return inner.element;
  if (inner instanceof z.ZodRecord) return inner.valueType;
  return undefined;
}

/** The known key within a small edit distance of a typo, if one stands out. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
