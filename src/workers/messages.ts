// What the primary and its workers say to each other over the cluster IPC channel (structured clone, so a
// Config or a list of InstanceSpec crosses as it is). Both ends are this program: the shapes are checked by
// their `kind` only.
import type { Config } from '../config/schema.ts';
import type { InstanceSpec } from '../discovery/instance.ts';
import type { ExplainQuery } from '../routing/explain.ts';

const PREFIX = 'zonegate:';

export interface StartMessage {
  readonly kind: 'zonegate:start';
  /** 1-based, stable across restarts of the same slot */
  readonly index: number;
  readonly workers: number;
  /** validated by the primary; the proxy port is the one every worker binds */
  readonly config: Config;
  /** discovery's instances per service, as the primary's watch last saw them */
  readonly snapshots: readonly (readonly [string, readonly InstanceSpec[]])[];
}

export interface ConfigMessage {
  readonly kind: 'zonegate:config';
  readonly id: number;
  readonly config: Config;
}

export interface SnapshotMessage {
  readonly kind: 'zonegate:snapshot';
  readonly service: string;
  readonly specs: readonly InstanceSpec[];
}

export type Question = { readonly what: 'metrics' | 'upstreams' | 'ready' } | { readonly what: 'explain'; readonly query: ExplainQuery };

export interface AskMessage {
  readonly kind: 'zonegate:ask';
  readonly id: number;
  readonly question: Question;
}

/** One rate-limit decision a worker asks of the primary's in-memory buckets. */
export interface TokenAsk {
  readonly id: number;
  readonly signature: string;
  readonly capacity: number;
  readonly perSecond: number;
  readonly cost: number;
  readonly key: string;
}

export interface TakeMessage {
  readonly kind: 'zonegate:take';
  readonly asks: readonly TokenAsk[];
}

export interface TokenAnswer {
  readonly id: number;
  readonly allowed: boolean;
  readonly remaining: number;
  readonly retryAfterMs: number;
}

export interface TakenMessage {
  readonly kind: 'zonegate:taken';
  readonly answers: readonly TokenAnswer[];
}

export interface ListeningMessage {
  readonly kind: 'zonegate:listening';
  readonly port: number;
}

/** A worker's answer to an ask or a config (`body`: what was asked; for a config, whether it applied). */
export interface AnswerMessage {
  readonly kind: 'zonegate:answer';
  readonly id: number;
  readonly body?: unknown;
  readonly error?: string;
}

/** A worker got SIGHUP (someone signalled it rather than the primary): the primary reloads for everyone. */
export interface HangupMessage {
  readonly kind: 'zonegate:hangup';
}

export type ToWorker = StartMessage | ConfigMessage | SnapshotMessage | AskMessage | TakenMessage;
export type ToPrimary = ListeningMessage | AnswerMessage | TakeMessage | HangupMessage;

function isMessage(value: unknown): value is { kind: string } {
  return typeof value === 'object' && value !== null && typeof (value as { kind?: unknown }).kind === 'string' && (value as { kind: string }).kind.startsWith(PREFIX);
}

export function isToWorker(value: unknown): value is ToWorker {
  return isMessage(value);
}

export function isToPrimary(value: unknown): value is ToPrimary {
  return isMessage(value);
}

/** Requests sent and not yet answered, by id; each is answered once, or rejected after its timeout. */
export class PendingAnswers {
  #next = 0;
  readonly #pending = new Map<number, { resolve(body: unknown): void; reject(err: Error): void; timer: NodeJS.Timeout }>();

  /** A new id, and the promise its answer settles. */
  open(timeoutMs: number, what: string): { id: number; answer: Promise<unknown> } {
    const id = ++this.#next;
    const { promise, resolve, reject } = Promise.withResolvers<unknown>();
    const timer = setTimeout(() => {
      this.#pending.delete(id);
      reject(new Error(`no answer to ${what} within ${timeoutMs} ms`));
    }, timeoutMs);
    this.#pending.set(id, { resolve, reject, timer });
    return { id, answer: promise };
  }

  settle(message: AnswerMessage): void {
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.error !== undefined) pending.reject(new Error(message.error));
    else pending.resolve(message.body);
  }

  /** Everything still waiting fails now (its worker is gone). */
  rejectAll(reason: string): void {
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer);
      pending.reject(new Error(reason));
      this.#pending.delete(id);
    }
  }
}
