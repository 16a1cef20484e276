// JSON written straight into a byte buffer, as UTF-8, for lines written per request (the access log). Building the
// line as a string first cost more than writing it: dozens of concatenations make a rope that is then flattened,
// measured for its UTF-8 length and encoded, and every field needed a regular-expression test for escaping.

/** UTF-8 bytes one UTF-16 unit can take as a JSON string character at most (`\u001f`, a lone surrogate's `\udc00`). */
export const MAX_BYTES_PER_UNIT = 6;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const HEX = '0123456789abcdef';
/** JSON's two-character escapes, by code: \b \t \n \f \r (others below 0x20 are \u00XX) */
const SHORT_ESCAPES: Readonly<Record<number, number>> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };

/**
 * A cursor over a buffer with room enough for what is written (the caller reserves it: see MAX_BYTES_PER_UNIT).
 * Strings come out exactly as JSON.stringify writes them, encoded as UTF-8.
 */
export class JsonBytes {
  buffer: Buffer;
  at: number;

  constructor(buffer: Buffer, at = 0) {
    this.buffer = buffer;
    this.at = at;
  }

  /** Text that is already JSON (punctuation, keys, numbers, literals) and ASCII. */
  raw(text: string): void {
    const bytes = this.buffer;
    let at = this.at;
    for (let i = 0; i < text.length; i++) bytes[at++] = text.charCodeAt(i);
    this.at = at;
  }

  number(value: number): void {
    this.raw(String(value));
  }

  boolean(value: boolean): void {
    this.raw(value ? 'true' : 'false');
  }

  nullableString(text: string | null): void {
    if (text === null) this.raw('null');
    else this.string(text);
  }

  /** `text` as a JSON string literal. */
  string(text: string): void {
    const bytes = this.buffer;
    let at = this.at;
    bytes[at++] = QUOTE;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code < 0x80) {
        if (code >= 0x20 && code !== QUOTE && code !== BACKSLASH) bytes[at++] = code;
        else at = escapeAscii(bytes, at, code);
      } else if (code < 0x800) {
        bytes[at++] = 0xc0 | (code >> 6);
        bytes[at++] = 0x80 | (code & 0x3f);
      } else if (code < 0xd800 || code > 0xdfff) {
        bytes[at++] = 0xe0 | (code >> 12);
        bytes[at++] = 0x80 | ((code >> 6) & 0x3f);
        bytes[at++] = 0x80 | (code & 0x3f);
      } else {
        const next = text.charCodeAt(i + 1);
        if (code <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
          const point = ((code - 0xd800) << 10) + (next - 0xdc00) + 0x10000;
          bytes[at++] = 0xf0 | (point >> 18);
          bytes[at++] = 0x80 | ((point >> 12) & 0x3f);
          bytes[at++] = 0x80 | ((point >> 6) & 0x3f);
          bytes[at++] = 0x80 | (point & 0x3f);
          i++;
        } else {
          at = unicodeEscape(bytes, at, code); // a lone surrogate: escaped, as JSON.stringify does (well-formed JSON)
        }
      }
    }
    bytes[at++] = QUOTE;
    this.at = at;
  }
}

function escapeAscii(bytes: Buffer, at: number, code: number): number {
  bytes[at++] = BACKSLASH;
  if (code === QUOTE || code === BACKSLASH) {
    bytes[at++] = code;
    return at;
  }
  const short = SHORT_ESCAPES[code];
  if (short !== undefined) {
    bytes[at++] = short;
    return at;
  }
  return unicodeEscape(bytes, at - 1, code);
}

/** `\uXXXX` in lower-case hex, as JSON.stringify writes it. */
function unicodeEscape(bytes: Buffer, at: number, code: number): number {
  bytes[at++] = BACKSLASH;
  bytes[at++] = 0x75; // u
  for (let shift = 12; shift >= 0; shift -= 4) bytes[at++] = HEX.charCodeAt((code >> shift) & 0xf);
  return at;
}
