// Preloaded (`--import`) into a zonegate process by tests: on exit it reports on stderr whether Node's TypeScript
// stripper (amaro) was loaded, which it is not when every module came from the compile cache. Plain JavaScript:
// a .ts probe would load the stripper itself.
process.on('exit', () => process.stderr.write(`stripper loaded: ${process.moduleLoadList.some((name) => name.includes('amaro'))}\n`));
