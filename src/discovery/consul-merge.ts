// One service's instances across datacenters: merges each datacenter's latest list, applies the flap guard,
// coalesces rebuilds under churn, and hands the merged list on. Knows nothing of Consul's API or of files.
import type { InstanceSpec } from './instance.ts';

/** rebuilds per service are coalesced to at most one per this interval under churn */
const MIN_PUBLISH_INTERVAL_MS = 250;

/** where a datacenter's list came from: the snapshot file stands in until Consul answers for it */
type ListSource = 'consul' | 'file';

export interface ServiceMergeOptions {
  readonly service: string;
  readonly maxDropRatio: number;
  /** the merged list changed; `live` is false while every list in it came from the snapshot file */
  readonly publish: (specs: readonly InstanceSpec[], live: boolean) => void;
  /** the flap guard held an answer (the caller confirms it by asking again) */
  readonly held: (detail: { service: string; healthyBefore: number; healthyNow: number }) => void;
}

function canonical(specs: readonly InstanceSpec[]): string {
  return JSON.stringify([...specs].sort((a, b) => (a.id < b.id ? -1 : 1)));
}

export class ServiceMerge {
  readonly #options: ServiceMergeOptions;
  readonly #byDatacenter = new Map<string, { specs: readonly InstanceSpec[]; source: ListSource }>();
  #published = '';
  /** healthy instances in the last list Consul had a part in; -1 until then (a file is no baseline) */
  #publishedHealthy = -1;
  /** datacenters whose last answer the flap guard held: their next answer is the confirmation */
  readonly #held = new Set<string>();
  #lastPublishAt = -Infinity;
  #timer: NodeJS.Timeout | undefined;
  #pending: (() => void) | undefined;

  constructor(options: ServiceMergeOptions) {
    this.#options = options;
  }

  get service(): string {
    return this.#options.service;
  }

  /** Datacenters whose list is Consul's own (not the file's). */
  answered(datacenter: string): boolean {
    return this.#byDatacenter.get(datacenter)?.source === 'consul';
  }

  /**
   * The snapshot file's lists, for the datacenters Consul has not answered for yet (a live answer is never
   * replaced); published together, at once.
   */
  seed(lists: ReadonlyMap<string, readonly InstanceSpec[]>): void {
    for (const [datacenter, specs] of lists) if (!this.answered(datacenter)) this.#byDatacenter.set(datacenter, { specs, source: 'file' });
    this.#merge();
  }

  /** Consul's list for a datacenter. Returns false when the flap guard holds it (the caller asks again at once). */
  update(datacenter: string, specs: readonly InstanceSpec[]): boolean {
    const previous = this.#byDatacenter.get(datacenter);
    this.#byDatacenter.set(datacenter, { specs, source: 'consul' });
    const healthy = this.#healthyAfterMerge();
    const dropRatio = this.#publishedHealthy > 0 ? 1 - healthy / this.#publishedHealthy : 0;
    if (dropRatio > this.#options.maxDropRatio && !this.#held.has(datacenter)) {
      this.#held.add(datacenter);
      if (previous) this.#byDatacenter.set(datacenter, previous);
      else this.#byDatacenter.delete(datacenter);
      this.#options.held({ service: this.service, healthyBefore: this.#publishedHealthy, healthyNow: healthy });
      return false;
    }
    this.#held.delete(datacenter);
    this.#merge();
    return true;
  }

  /** Publishes a coalesced update now instead of when its interval ends. */
  flush(): void {
    this.#pending?.();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#pending = undefined;
  }

  #healthyAfterMerge(): number {
    let healthy = 0;
    for (const { specs } of this.#byDatacenter.values()) for (const spec of specs) if (spec.healthy) healthy += 1;
    return healthy;
  }

  #merge(): void {
    const lists = [...this.#byDatacenter.values()];
    const merged = lists.flatMap(({ specs }) => specs);
    const live = lists.some(({ source }) => source === 'consul');
    if (live) this.#publishedHealthy = this.#healthyAfterMerge();
    const text = canonical(merged);
    if (text === this.#published) return;
    this.#published = text;
    this.#schedulePublish(merged, live);
  }

  #schedulePublish(specs: readonly InstanceSpec[], live: boolean): void {
    clearTimeout(this.#timer);
    const wait = this.#lastPublishAt + MIN_PUBLISH_INTERVAL_MS - performance.now();
    const publish = (): void => {
      clearTimeout(this.#timer);
      this.#pending = undefined;
      this.#lastPublishAt = performance.now();
      this.#options.publish(specs, live);
    };
    if (wait <= 0) return publish();
    this.#pending = publish;
    this.#timer = setTimeout(publish, wait);
  }
}
