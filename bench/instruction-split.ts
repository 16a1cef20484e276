// Splits a callgrind profile's instructions into V8's garbage collector, V8's compilers and the rest (the
// program's own work, in JIT code, builtins, Node and libuv), per request. The total swings from run to run
// with where collections fall (one build counted 224k and 278k per request, most of the difference in the
// collector); the program's own count moves by a few percent, so it is what to compare between builds.
//   callgrind_annotate --threshold=100 <callgrind.out> | node bench/instruction-split.ts <requests> <name>
import { text } from 'node:stream/consumers';

const GARBAGE_COLLECTOR = /Scaveng|heap::|Heap::|MarkCompact|Marking|IteratePointers|Sweep|Evacuat|MemoryAllocator|MinorMS|SizeFromMap|FreeList|LinearAllocation|ResetLab|Promot|RememberedSet|SlotSet/;
const COMPILERS = /compiler::|maglev|Maglev|turboshaft|Turboshaft|BytecodeGenerator|interpreter::|Parser|Scanner|baseline/;
const LINE = /^\s*([\d,]+) \(\s*[\d.]+%\)\s+(.*)$/;

const [requests, name = 'target'] = [Number(process.argv[2]), process.argv[3]];
let total = 0;
let collector = 0;
let compilers = 0;
for (const line of (await text(process.stdin)).split('\n')) {
  const match = LINE.exec(line);
  if (match === null) continue;
  const count = Number(match[1]!.replaceAll(',', ''));
  if (match[2]!.includes('PROGRAM TOTALS')) total = count;
  else if (GARBAGE_COLLECTOR.test(match[2]!)) collector += count;
  else if (COMPILERS.test(match[2]!)) compilers += count;
}
const perRequest = (count: number): string => Math.round(count / requests).toLocaleString('en-US').padStart(9);
console.log(
  `${name.padEnd(9)} ${perRequest(total)} instructions/request: ${perRequest(total - collector - compilers)} the program's own,` +
    `${perRequest(collector)} garbage collection,${perRequest(compilers)} compiling`,
);
