// `npm run docs`: writes the files generated from src/config/schema.ts, docs/configuration.md and
// routes.schema.json. test/docs/generated.test.ts fails while they are out of date.
import { writeFile } from 'node:fs/promises';
import { configurationReference, schemaFile } from './config-reference.ts';

export const GENERATED = {
  'docs/configuration.md': configurationReference,
  'routes.schema.json': schemaFile,
} as const;

if (import.meta.main) {
  for (const [file, render] of Object.entries(GENERATED)) {
    await writeFile(new URL(`../${file}`, import.meta.url), render());
    console.log(`wrote ${file}`);
  }
}
