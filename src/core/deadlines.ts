// A coarse timer wheel for per-try deadlines (undici keeps its own fast timers for the same reason): arming one is
// an array push, disarming is a field write, and one interval serves every deadline in flight, where a
// setTimeout/clearTimeout pair per try allocated and unlinked a timer object each time. Deadlines fire up to one
// tick late.

/** Something with a deadline: `deadline` is a performance.now() time, or 0 when disarmed. */
export interface Expiring {
  deadline: number;
  /** called once the deadline has passed (and it is still armed) */
  expire(): void;
}

const SLOTS = 1024;
const MASK = SLOTS - 1;

export class DeadlineWheel {
  readonly #tickMs: number;
  readonly #slots: Expiring[][] = Array.from({ length: SLOTS }, () => []);
  /** the absolute tick whose slot is processed next */
  #cursor = 0;
  /** entries in the slots, armed or not */
  #entries = 0;
  #timer: NodeJS.Timeout | undefined;

  constructor(tickMs = 10) {
    this.#tickMs = tickMs;
  }

  /** Arms `task` to expire at `task.deadline`. */
  add(task: Expiring): void {
    if (this.#timer === undefined) {
      this.#cursor = Math.floor(performance.now() / this.#tickMs);
      this.#timer = setInterval(this.#tick, this.#tickMs);
      this.#timer.unref();
    }
    this.#place(task, this.#cursor);
  }

  /** Puts `task` in the slot of its deadline's tick, never before `earliest` (a deadline already due waits one tick). */
  #place(task: Expiring, earliest: number): void {
    const tick = Math.max(Math.ceil(task.deadline / this.#tickMs), earliest);
    this.#slots[tick & MASK]!.push(task);
    this.#entries++;
  }

  readonly #tick = (): void => {
    const now = performance.now();
    const last = Math.floor(now / this.#tickMs);
    for (; this.#cursor <= last; this.#cursor++) {
      const index = this.#cursor & MASK;
      const slot = this.#slots[index]!;
      if (slot.length === 0) continue;
      this.#slots[index] = [];
      this.#entries -= slot.length;
      for (const task of slot) {
        const deadline = task.deadline;
        if (deadline === 0) continue;
        if (deadline <= now) task.expire();
        // a later round of the wheel, or re-armed since: back in its slot, past this one
        else this.#place(task, this.#cursor + 1);
      }
    }
    if (this.#entries === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  };
}

/** The wheel of every per-try deadline of the process. */
export const tryDeadlines = new DeadlineWheel();
