#!/usr/bin/env node
// Node ≥ 22.19 runs the TypeScript sources directly (type stripping). With the compile cache filled
// (bin/warm-compile-cache.js, run on install), the sources load already stripped and the stripper itself
// (a WebAssembly module whose ~25 MiB a process never gives back) is not loaded at all.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { runCli } = await import('../src/cli.ts');
await runCli(process.argv.slice(2));
