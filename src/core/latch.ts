// A one-shot signal that costs no promise. Each request's access line waits on one for its exchange's last verdict:
// a promise chain per request (an async exchange, its catch, the wait) was a measurable share of a small request.

export class Latch {
  #open = false;
  #waiting: (() => void) | undefined;

  open(): void {
    if (this.#open) return;
    this.#open = true;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.();
  }

  /** Runs `fn` once open, at once when it is. One waiter: a second replaces the first. */
  whenOpen(fn: () => void): void {
    if (this.#open) fn();
    else this.#waiting = fn;
  }
}
