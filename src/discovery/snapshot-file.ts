// `discovery.consul.snapshotFile`: what Consul last said, per service, kept on disk for a restart while Consul
// is down. Written with one schema and read back with the same one; a file that does not fit it is reported
// and ignored, never trusted and never fatal.
import { readFileSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { z } from 'zod';
import type { Logger } from '../observability/logger.ts';
import { describeIssues } from './describe-issues.ts';
import type { InstanceSpec } from './instance.ts';

/** the file is written at most once per this interval, and at least once per interval while changes come */
const SNAPSHOT_WRITE_INTERVAL_MS = 1000;

const fileInstance = z.object({
  id: z.string().min(1),
  service: z.string().min(1),
  host: z.string().min(1),
  port: z.number().int().min(1).max(65535),
  zone: z.string(),
  weight: z.number().positive(),
  tags: z.array(z.string()),
  meta: z.record(z.string(), z.string()),
  healthy: z.boolean(),
  datacenter: z.string().min(1).optional(),
  // files of earlier versions hold whole instances, ejection included (their other extra fields are dropped)
  ejected: z.boolean().optional(),
});

const snapshotFileSchema = z.record(z.string().min(1), z.array(fileInstance));

export type SnapshotFileContent = Readonly<Record<string, readonly InstanceSpec[]>>;

function specFromFile(entry: z.infer<typeof fileInstance>): InstanceSpec {
  const { ejected, healthy, datacenter, ...spec } = entry;
  // An ejected entry's `healthy: false` may be only its breaker's, and that breaker is gone: this process's
  // breakers judge the instance afresh.
  return { ...spec, healthy: healthy || ejected === true, ...(datacenter === undefined ? {} : { datacenter }) };
}

/** The file's services, or what is wrong with it. A missing file is an empty one (the first start). */
export function parseSnapshotFile(text: string): { services: SnapshotFileContent } | { problem: string } {
  if (text.trim() === '') return { problem: 'the file is empty' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  const parsed = snapshotFileSchema.safeParse(json);
  if (!parsed.success) return { problem: describeIssues(parsed.error) };
  return { services: Object.fromEntries(Object.entries(parsed.data).map(([service, entries]) => [service, entries.map(specFromFile)])) };
}

/** Reads the file at start (synchronously: before any watch can answer); logs and ignores a bad one. */
export function loadSnapshotFile(file: string, logger: Logger): SnapshotFileContent {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      logger.warn({ file, problem: (err as Error).message }, 'snapshot file ignored: it cannot be read');
    }
    return {};
  }
  const result = parseSnapshotFile(text);
  if ('problem' in result) {
    logger.warn({ file, problem: result.problem }, 'snapshot file ignored: it does not hold a valid snapshot');
    return {};
  }
  return result.services;
}

/** Checks and serialises a snapshot with the schema the reader uses: a file this writes always reads back. */
export function serializeSnapshot(snapshot: SnapshotFileContent): string {
  return JSON.stringify(snapshotFileSchema.parse(snapshot));
}

/** Writes a file atomically: a reader (or a crash) sees the old file or the new one, never half of one. */
export async function writeAtomically(file: string, text: string): Promise<void> {
  const temporary = `${file}.${process.pid}.tmp`;
  await writeFile(temporary, text);
  await rename(temporary, file);
}

export interface SnapshotWriterOptions {
  readonly file: string;
  /** what to write, collected when the write happens (so it is the newest state) */
  readonly collect: () => SnapshotFileContent;
  readonly logger: Logger;
  /** how a text reaches the file; atomic by default */
  readonly save?: (file: string, text: string) => Promise<void>;
}

/**
 * Leading and trailing throttle: the first change is written at once, changes within the next interval are
 * written together when it ends, so a service that keeps changing is still written once a second.
 */
export class SnapshotWriter {
  readonly #options: SnapshotWriterOptions;
  #lastWriteAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #writing: Promise<void> = Promise.resolve();

  constructor(options: SnapshotWriterOptions) {
    this.#options = options;
  }

  /** Something to write changed. */
  changed(): void {
    if (this.#timer !== undefined) return; // the scheduled write will take this change too
    const wait = this.#lastWriteAt + SNAPSHOT_WRITE_INTERVAL_MS - Date.now();
    if (wait <= 0) return this.#write();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#write();
    }, wait);
    this.#timer.unref();
  }

  /** Resolves once the writes begun so far have finished. */
  settled(): Promise<void> {
    return this.#writing;
  }

  /** Writes a change that waits for its turn now. */
  flush(): void {
    if (this.#timer === undefined) return;
    this.stop();
    this.#write();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #write(): void {
    this.#lastWriteAt = Date.now();
    const { file, collect, logger, save = writeAtomically } = this.#options;
    // one write at a time, in order: the newest state is collected when its turn comes
    this.#writing = this.#writing.then(async () => {
      try {
        await save(file, serializeSnapshot(collect()));
      } catch (err) {
        logger.warn({ file, err: (err as Error).message }, 'could not write the discovery snapshot file');
      }
    });
  }
}
