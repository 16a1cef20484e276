#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=16
// The `zonegate` command. Plain JavaScript that any Node can parse (no top-level await, no newer syntax, no static
// imports): an older Node gets one clear line instead of a SyntaxError from a module it cannot link.
//
// The first line: under steady load V8 lets its young generation grow to 64 MiB semi-spaces (128 MiB of RSS) on a
// machine with plenty of memory. A gateway's garbage is short-lived; with 16 MiB semi-spaces it costs no measurable
// CPU per request and a process under 50 connections of small requests peaks at ~165 MiB instead of ~240 MiB.
// MALLOC_ARENA_MAX=2: glibc gives each thread that frees body chunks an arena of its own and keeps what was freed
// there; with two, streaming 200 MB through a process peaks ~10 MiB lower, at no measurable CPU cost.
// Both count only when the process starts, hence this line: run the file itself (the `zonegate` bin, npm scripts,
// the image); `node bin/zonegate.js` runs too, without them (and a MALLOC_ARENA_MAX of your own needs that).

// undici 8 needs 22.19 (its `engines`); package.json's `engines` says the same (a test keeps them equal).
var MINIMUM = [22, 19];
var version = process.versions.node.split('.').map(Number);
if (version[0] < MINIMUM[0] || (version[0] === MINIMUM[0] && version[1] < MINIMUM[1])) {
  process.stderr.write('zonegate needs Node.js >= ' + MINIMUM.join('.') + '; this is ' + process.versions.node + '\n');
  process.exit(1);
}

// Installed, the package holds the built JavaScript (dist/). In a checkout, src/ is there and runs as it is
// (Node strips the types); the compile cache then keeps the stripped modules, so a gateway started again loads
// them ready and never loads the stripper (a WebAssembly module whose ~25 MiB a process never gives back).
import('node:fs')
  .then(function (fs) {
    var sources = new URL('../src/cli.ts', import.meta.url);
    return fs.existsSync(sources) ? sources.href : new URL('../dist/cli.js', import.meta.url).href;
  })
  .then(function (cli) {
    return import('node:module').then(function (module) {
      module.enableCompileCache();
      return import(cli);
    });
  })
  .then(function (cli) {
    return cli.runCli(process.argv.slice(2));
  });
