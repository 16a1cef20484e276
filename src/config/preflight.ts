// What a config file is refused for before the YAML parser sees it: bytes that are not text, and nesting deeper than
// any routes.yaml needs (the parser recurses per level: thousands of `[` overflow its stack, and every level then
// reports the same error). Each is one clear sentence at the first offending place; no byte of a binary file is shown.

/** Levels of nested collections (block and flow together) a file may have; a routes.yaml needs about ten. */
export const MAX_NESTING = 64;

/** NUL, the other C0 controls YAML refuses (all but tab, LF, CR), DEL, and U+FFFD (what invalid UTF-8 decodes to). */
const NOT_TEXT = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F\uFFFD]/;

/** a line that ends in a block scalar indicator (`key: |`, `- >-`): the lines below it are text */
const BLOCK_SCALAR = /(?:^|[\s:-])[|>][0-9+-]*\s*(?:#.*)?$/;

export interface PreflightProblem {
  /** offset into the text */
  readonly offset: number;
  readonly message: string;
}

export function preflight(text: string): PreflightProblem | undefined {
  const binary = NOT_TEXT.exec(text);
  if (binary) {
    return {
      offset: binary.index,
      message: 'the file is not a text file (it holds bytes that are not UTF-8 text); expected a YAML routes file',
    };
  }
  const deep = tooDeep(text);
  if (deep !== undefined) {
    return {
      offset: deep,
      message: `collections are nested more than ${MAX_NESTING} levels deep here; a routes file needs far fewer`,
    };
  }
  return undefined;
}

/**
 * The offset where nesting first exceeds MAX_NESTING, or undefined. Counts block levels (indentation, `- ` items on
 * one line) and flow levels (`[`, `{` outside quotes and comments); block scalar (`|`, `>`) contents are skipped.
 * An estimate that errs high only for odd layouts far beyond MAX_NESTING's reach.
 */
function tooDeep(text: string): number | undefined {
  const indents: number[] = [];
  let flow = 0;
  /** inside a block scalar: the indentation its content lines are deeper than */
  let scalarParent: number | undefined;
  let lineStart = 0;
  while (lineStart <= text.length) {
    const newline = text.indexOf('\n', lineStart);
    const lineEnd = newline === -1 ? text.length : newline;
    const line = text.slice(lineStart, lineEnd);
    const indent = line.length - line.trimStart().length;
    const blank = line.trim() === '' || line.trimStart().startsWith('#');
    if (scalarParent !== undefined && (blank || indent > scalarParent)) {
      lineStart = lineEnd + 1;
      continue;
    }
    scalarParent = undefined;
    if (!blank) {
      if (flow === 0) {
        while (indents.length > 0 && indents.at(-1)! >= indent) indents.pop();
        indents.push(indent);
      }
      let column = indent;
      // `- - - x`: each dash opens a sequence inside the last
      while (flow === 0 && line.startsWith('- ', column)) {
        indents.push(column + 1);
        if (indents.length > MAX_NESTING) return lineStart + column;
        column += 2;
        while (line[column] === ' ') column++;
      }
      const scan = scanFlow(line, column, flow, indents.length);
      if (scan.exceededAt !== undefined) return lineStart + scan.exceededAt;
      flow = scan.flow;
      if (indents.length + flow > MAX_NESTING) return lineStart + column;
      if (flow === 0 && BLOCK_SCALAR.test(line)) scalarParent = indent;
    }
    lineStart = lineEnd + 1;
  }
  return undefined;
}

/** Flow brackets on one line from `column`, outside quotes and comments. */
function scanFlow(line: string, column: number, flow: number, blockDepth: number): { flow: number; exceededAt?: number } {
  let quote: string | undefined;
  for (let i = column; i < line.length; i++) {
    const char = line[i]!;
    if (quote !== undefined) {
      if (char === '\\' && quote === '"') i++;
      else if (char === quote) quote = undefined;
      continue;
    }
    if (char === '#' && (i === 0 || line[i - 1] === ' ' || line[i - 1] === '\t')) break;
    if ((char === '"' || char === "'") && (i === column || /[\s[{,:]/.test(line[i - 1]!))) quote = char;
    else if (char === '[' || char === '{') {
      flow++;
      if (blockDepth + flow > MAX_NESTING) return { flow, exceededAt: i };
    } else if ((char === ']' || char === '}') && flow > 0) flow--;
  }
  return { flow };
}
