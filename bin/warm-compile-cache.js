#!/usr/bin/env node
// In a checkout: fills Node's compile cache (NODE_COMPILE_CACHE, else <tmpdir>/node-compile-cache) with every
// module of src/, so a `zonegate` started from the sources never strips types at run time (see bin/zonegate.js).
// Tests run it to start gateways as they run deployed; `node bin/warm-compile-cache.js` does it by hand. The npm
// package does not need it (it ships JavaScript) and does not ship it. Safe to repeat; it never fails: without a
// usable cache the gateway still runs, only with more memory.
import { readdirSync } from 'node:fs';
import { enableCompileCache, flushCompileCache } from 'node:module';

try {
  const cache = enableCompileCache();
  if (cache.directory === undefined) throw new Error(cache.message ?? 'the compile cache is disabled');
  const src = new URL('../src/', import.meta.url);
  const modules = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts'));
  for (const file of modules) await import(new URL(file, src).href);
  flushCompileCache();
} catch (err) {
  console.warn(`zonegate: the compile cache was not filled (${err instanceof Error ? err.message : String(err)})`);
}
