#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=16
// The flag: under steady load V8 lets its young generation grow to 64 MiB semi-spaces (128 MiB of RSS) on a
// machine with plenty of memory. A gateway's garbage is short-lived; with 16 MiB semi-spaces it costs no measurable
// CPU per request and a process under 50 connections of small requests peaks at ~165 MiB instead of ~240 MiB.
// MALLOC_ARENA_MAX=2: glibc gives each thread that frees body chunks an arena of its own and keeps what was freed
// there; with two, streaming 200 MB through a process peaks ~10 MiB lower, at no measurable CPU cost.
// Both count only when the process starts, hence this line: run the file itself (the `zonegate` bin, npm scripts,
// the image); `node bin/zonegate.js` runs too, without them (and a MALLOC_ARENA_MAX of your own needs that).
//
// Node ≥ 22.19 runs the TypeScript sources directly (type stripping). With the compile cache filled
// (bin/warm-compile-cache.js, run on install), the sources load already stripped and the stripper itself
// (a WebAssembly module whose ~25 MiB a process never gives back) is not loaded at all.
import { enableCompileCache } from 'node:module';

enableCompileCache();
const { runCli } = await import('../src/cli.ts');
await runCli(process.argv.slice(2));
