// JSON written as bytes must be exactly JSON.stringify's text, encoded as UTF-8, for any string a client can send.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { JsonBytes, MAX_BYTES_PER_UNIT } from '../../src/observability/json-bytes.ts';

function written(write: (out: JsonBytes) => void, room: number): string {
  const out = new JsonBytes(Buffer.alloc(room));
  write(out);
  return out.buffer.toString('utf8', 0, out.at);
}

/** A deterministic generator (mulberry32): the same strings on every run. */
function generator(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('JsonBytes', () => {
  it('writes every UTF-16 unit as JSON.stringify does: escapes, multi-byte characters, pairs and lone surrogates', () => {
    const edges = [0x00, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f, 0x20, 0x22, 0x2f, 0x5c, 0x7e, 0x7f, 0x80, 0x7ff, 0x800, 0xd7ff, 0xd800, 0xdbff, 0xdc00, 0xdfff, 0xe000, 0xfffd, 0xffff];
    for (const unit of edges) {
      const text = `a${String.fromCharCode(unit)}b`;
      assert.equal(written((out) => out.string(text), text.length * MAX_BYTES_PER_UNIT + 2), JSON.stringify(text), `unit ${unit.toString(16)}`);
    }
    for (const text of ['😀', '\ud83d\ude00\ud83d', '\ude00\ud83d', 'é ü 中文', '']) {
      assert.equal(written((out) => out.string(text), text.length * MAX_BYTES_PER_UNIT + 2), JSON.stringify(text));
    }
  });

  it('matches JSON.stringify on 5,000 random strings, within the room it promises', () => {
    const random = generator(24);
    for (let n = 0; n < 5_000; n++) {
      const length = Math.floor(random() * 40);
      let text = '';
      // mostly the ranges where encodings change, every unit possible
      for (let i = 0; i < length; i++) text += String.fromCharCode(random() < 0.5 ? Math.floor(random() * 0x100) : Math.floor(random() * 0x10000));
      const room = text.length * MAX_BYTES_PER_UNIT + 2;
      const out = new JsonBytes(Buffer.alloc(room + 16));
      out.string(text);
      assert.ok(out.at <= room, `${out.at} bytes for ${text.length} units`);
      assert.equal(out.buffer.toString('utf8', 0, out.at), JSON.stringify(text));
    }
  });

  it('writes nulls, numbers and booleans as JSON', () => {
    const text = written((out) => {
      out.raw('[');
      out.nullableString(null);
      out.raw(',');
      out.number(12.34);
      out.raw(',');
      out.number(0);
      out.raw(',');
      out.boolean(true);
      out.raw(',');
      out.boolean(false);
      out.raw(']');
    }, 64);
    assert.deepEqual(JSON.parse(text), [null, 12.34, 0, true, false]);
  });
});
