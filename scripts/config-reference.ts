// docs/configuration.md, written from the JSON Schema that src/config/schema.ts emits: every key with its type,
// default, an example and its description, so the reference cannot drift from what zonegate accepts.
import { stringify } from 'yaml';
import { configJsonSchema, INPUT_PATTERNS } from '../src/config/schema.ts';

/** The part of JSON Schema that `z.toJSONSchema` emits for routes.yaml. */
export interface SchemaNode {
  type?: string;
  description?: string;
  default?: unknown;
  examples?: unknown[];
  enum?: unknown[];
  const?: unknown;
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  properties?: Record<string, SchemaNode>;
  required?: string[];
  additionalProperties?: SchemaNode | boolean;
  items?: SchemaNode;
  anyOf?: SchemaNode[];
}

/** One key of the file, at a path like `routes[].retries.attempts` or `discovery.static.<service>[].address`. */
export interface ConfigKey {
  readonly path: string;
  readonly node: SchemaNode;
  readonly required: boolean;
  /** the path as nested keys, for the example (`[]` for a list item, a sample name for a map key) */
  readonly steps: readonly string[];
}

/** What a map's keys stand for, and the name the examples use for one. */
const MAP_KEYS: Record<string, { readonly label: string; readonly sample: string }> = {
  topology: { label: 'region', sample: 'cn-east' },
  'topology.<region>': { label: 'city', sample: 'shanghai' },
  'discovery.static': { label: 'service', sample: 'order-service' },
};

const isSection = (node: SchemaNode): boolean => node.properties !== undefined;

/** Every key in file order, depth first: sections, then their keys. */
export function configKeys(schema: SchemaNode = configJsonSchema() as SchemaNode): ConfigKey[] {
  const keys: ConfigKey[] = [];
  const visit = (node: SchemaNode, path: string, steps: readonly string[]): void => {
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const childPath = path === '' ? name : `${path}.${name}`;
      const childSteps = [...steps, name];
      keys.push({ path: childPath, node: child, required: node.required?.includes(name) === true, steps: childSteps });
      descend(child, childPath, childSteps);
    }
  };
  const descend = (node: SchemaNode, path: string, steps: readonly string[]): void => {
    if (isSection(node)) visit(node, path, steps);
    else if (node.items !== undefined && isSection(node.items)) visit(node.items, `${path}[]`, [...steps, '[]']);
    else if (typeof node.additionalProperties === 'object' && MAP_KEYS[path] !== undefined) {
      const { label, sample } = MAP_KEYS[path];
      const child = node.additionalProperties;
      const childPath = `${path}.<${label}>`;
      keys.push({ path: childPath, node: child, required: false, steps: [...steps, sample] });
      descend(child, childPath, [...steps, sample]);
    }
  };
  visit(schema, '', []);
  return keys;
}

const PATTERN_NAMES = new Map<string, string>(Object.entries(INPUT_PATTERNS).map(([name, pattern]) => [pattern, name]));

/** `duration`, `drop | reject | allow`, `integer ≥ 1024`, `list of host:port`… */
export function typeOf(node: SchemaNode): string {
  if (node.anyOf) return node.anyOf.map(typeOf).join(' | ');
  if (node.const !== undefined) return `\`${String(node.const)}\``;
  if (node.enum) return node.enum.map((value) => `\`${String(value)}\``).join(' | ');
  const named = node.pattern === undefined ? undefined : PATTERN_NAMES.get(node.pattern.replace(/\|\\\$\\\{$/, ''));
  if (named) return named;
  switch (node.type) {
    case 'array':
      return `list of ${node.items && !isSection(node.items) ? typeOf(node.items) : 'entries'}${node.minItems ? ` (at least ${node.minItems})` : ''}`;
    case 'object':
      if (isSection(node)) return 'section';
      return `map of name → ${typeof node.additionalProperties === 'object' ? typeOf(node.additionalProperties) : 'value'}`;
    case 'integer':
    case 'number': {
      const { minimum: min, maximum: max } = node;
      const range = min !== undefined && max !== undefined ? ` ${min}–${max}` : min !== undefined ? ` ≥ ${min}` : max !== undefined ? ` ≤ ${max}` : '';
      return `${node.type}${range}`;
    }
    case undefined:
      return 'any JSON value';
    default:
      return node.type;
  }
}

/** A value as it is written in YAML, on one line. */
function inline(value: unknown): string {
  return stringify(value, { collectionStyle: 'flow', lineWidth: 0 }).trim();
}

/** The key with its example (or default) value, nested as it sits in routes.yaml. */
function exampleYaml(key: ConfigKey, value: unknown): string {
  const lines: string[] = [];
  let indent = '';
  let listItem = false;
  for (const [index, step] of key.steps.entries()) {
    if (step === '[]') {
      listItem = true;
      continue;
    }
    const last = index === key.steps.length - 1;
    lines.push(`${indent}${listItem ? '- ' : ''}${inline(step)}:${last ? ` ${inline(value)}` : ''}`);
    indent += listItem ? '    ' : '  ';
    listItem = false;
  }
  return lines.join('\n');
}

/** An example value for a key: its own example, else its default. */
export function exampleOf(node: SchemaNode): { value: unknown } | undefined {
  if (node.examples !== undefined && node.examples.length > 0) return { value: node.examples[0] };
  if (node.default !== undefined) return { value: node.default };
  return undefined;
}

function anchorOf(path: string): string {
  return path.toLowerCase().replace(/[^a-z0-9 _-]/g, '');
}

function keyEntry(key: ConfigKey): string {
  const { node } = key;
  const facts = [`type: ${typeOf(node)}`];
  if (node.default !== undefined) facts.push(`default: \`${inline(node.default)}\``);
  else if (key.required) facts.push('required');
  else if (!isSection(node) && !key.path.endsWith('>')) facts.push('optional');
  const lines = [`### \`${key.path}\``, '', node.description ?? '', '', facts.join(' · ')];
  const example = isSection(node) ? undefined : exampleOf(node);
  if (example) lines.push('', '```yaml', exampleYaml(key, example.value), '```');
  return lines.join('\n');
}

const INTRO = `# Configuration reference

<!-- Generated by \`npm run docs\` from src/config/schema.ts; edit the descriptions there, not here. -->

zonegate reads one YAML file, \`routes.yaml\` by default (\`zonegate run --config FILE\`). This page lists every
key: its type, its default, an example and what it does. The example routes.yaml shipped with zonegate uses most
of them.

## The file

- **Checked before use.** \`zonegate validate routes.yaml\` prints \`ok\` or every problem as \`file:line:col: message\`
  (exit 1). Unknown keys are errors, and so are YAML tags (\`!env x\`). A running gateway reloads the file when it
  changes or on \`SIGHUP\`; a file with errors is logged and the running config keeps serving.
- **Editors.** The JSON Schema of the file ships with zonegate as \`routes.schema.json\` (\`zonegate schema\` prints
  it): descriptions, defaults, and patterns that flag a malformed duration or address as you type. With the YAML
  language server (VS Code's YAML extension and others), name it on the file's first line:
  \`# yaml-language-server: $schema=node_modules/zonegate/routes.schema.json\`.
- **Environment.** \`\${VAR}\` and \`\${VAR:-default}\` are replaced from the environment, in values and keys
  (\`$\${\` writes a literal \`\${\`). A placeholder gives a number or a boolean only where the key takes one
  (\`weight: \${WEIGHT}\`), and its text everywhere else (\`adminToken: \${TOKEN}\` with \`TOKEN=0123\` is \`"0123"\`).
  Error positions point into the file as written; messages never show a token or a password.
- **Anchors and merge keys** work: \`- <<: *orders\` reuses a route and overrides a key or two.
- **Durations**: \`250ms\`, \`5s\`, \`1.5m\`, \`2h\`, in whole milliseconds, at most \`596h\`. Timeouts are at least \`1ms\`
  (\`0s\` would fail every request); a backoff or \`drainTimeout\` may be \`0s\`.
- **Rates**: \`100/s\`, \`6000/m\`, \`1000/h\`.
- **Addresses**: \`host:port\` (\`[::1]:8080\` for IPv6; a listener's host may be empty, \`:8080\`, for every
  interface). Consul: \`http(s)://host[:port]\` or \`host:port\`. Redis: \`redis://\` or \`rediss://\` URLs (the path
  is the database number), \`host[:port]\`, a port, or a Unix socket path.

Checks across keys, run once the file passes the schema: routes name services that exist in \`discovery.static\`
(unless Consul is configured); every zone of a static instance and \`gateway.zone\` exist in \`topology\`; a zone
belongs to one city and a city to one region, and zone, city and region names do not collide; route names are
unique; static instance ids are unique across services; a \`gateway.admin\` address other than loopback needs
\`adminToken\`, and a port other than \`gateway.listen\`'s where their addresses overlap; \`rateLimit.burst\` is at
least \`cost\`; \`retries.perTryTimeout\` is at most \`timeout\`; \`limits.headersTimeout\` is at most
\`limits.requestTimeout\`.
`;

/** The whole of docs/configuration.md. */
export function configurationReference(): string {
  const keys = configKeys();
  const sections = keys.filter((key) => !key.path.includes('.'));
  const toc = sections.map((key) => `- [\`${key.path}\`](#${anchorOf(key.path)}): ${key.node.description ?? ''}`);
  const body = keys.map((key) => (key.path.includes('.') ? keyEntry(key) : `## \`${key.path}\`\n\n${keyEntry(key).split('\n').slice(2).join('\n')}`));
  return [INTRO, '## Sections', '', ...toc, '', body.join('\n\n'), ''].join('\n');
}

/** routes.schema.json: what `zonegate schema` prints. */
export function schemaFile(): string {
  return `${JSON.stringify(configJsonSchema(), null, 2)}\n`;
}
