// Requests in flight per instance: the load that power-of-two-choices compares, and what admin shows.
import type { Instance } from '../discovery/instance.ts';

export class InFlight {
  readonly #counts = new Map<string, number>();

  readonly load = (instance: Instance): number => this.#counts.get(instance.id) ?? 0;

  begin(instance: Instance): void {
    this.#counts.set(instance.id, (this.#counts.get(instance.id) ?? 0) + 1);
  }

  end(instance: Instance): void {
    const left = (this.#counts.get(instance.id) ?? 1) - 1;
    if (left <= 0) this.#counts.delete(instance.id);
    else this.#counts.set(instance.id, left);
  }
}
