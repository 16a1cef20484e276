// The retry budget bounds amplification, not concurrency (Finagle's RetryBudget, tower's retry::Budget):
// every request deposits a token, every retry withdraws 1 / share of one, and deposits and withdrawals
// expire after the window. So retries stay within `share` of the requests of the last window, on top of a
// reserve of `minPerSecond` retries per second: a single dead instance can always be retried around, while a
// service answering 503 to everything gets at most about (1 + share) × its load.

/** Finagle's defaults: 20% of requests over 10 s, plus 10 retries per second. */
const RETRY_BUDGET = { share: 0.2, windowMs: 10_000, minPerSecond: 10 } as const;

const SLOTS = 10;

type Clock = () => number;

/** One service's budget: a sliding window of SLOTS slots, each holding deposits minus withdrawals. */
export class RetryBudget {
  readonly #slots = new Float64Array(SLOTS);
  readonly #slotMs: number;
  readonly #withdrawal: number;
  readonly #reserve: number;
  readonly #now: Clock;
  /** the slot index (absolute, not modulo) that was current at the last access */
  #current: number;
  #balance = 0;

  constructor(options: { share: number; windowMs: number; minPerSecond: number } = RETRY_BUDGET, now: Clock = performance.now.bind(performance)) {
    this.#slotMs = options.windowMs / SLOTS;
    this.#withdrawal = 1 / options.share;
    this.#reserve = options.minPerSecond * (options.windowMs / 1000) * this.#withdrawal;
    this.#now = now;
    this.#current = Math.floor(now() / this.#slotMs);
  }

  /** A request was made. */
  deposit(): void {
    this.#advance();
    this.#slots[this.#current % SLOTS]! += 1;
    this.#balance += 1;
  }

  /** Takes the cost of one retry if the budget has it. */
  tryWithdraw(): boolean {
    this.#advance();
    if (this.#reserve + this.#balance < this.#withdrawal) return false;
    this.#slots[this.#current % SLOTS]! -= this.#withdrawal;
    this.#balance -= this.#withdrawal;
    return true;
  }

  /** Retries the budget would allow right now (for tests and admin). */
  get available(): number {
    this.#advance();
    return Math.floor((this.#reserve + this.#balance) / this.#withdrawal);
  }

  /** Expires the slots that left the window since the last access. */
  #advance(): void {
    const slot = Math.floor(this.#now() / this.#slotMs);
    if (slot === this.#current) return;
    const expired = Math.min(slot - this.#current, SLOTS);
    for (let i = 1; i <= expired; i++) {
      const index = (this.#current + i) % SLOTS;
      this.#balance -= this.#slots[index]!;
      this.#slots[index] = 0;
    }
    this.#current = slot;
  }
}

/** The budgets of every service, created on first use. */
export class RetryBudgets {
  readonly #budgets = new Map<string, RetryBudget>();
  readonly #now: Clock | undefined;

  constructor(now?: Clock) {
    this.#now = now;
  }

  of(service: string): RetryBudget {
    let budget = this.#budgets.get(service);
    if (budget === undefined) {
      budget = new RetryBudget(RETRY_BUDGET, this.#now);
      this.#budgets.set(service, budget);
    }
    return budget;
  }

  /** Forgets services no longer routed. */
  retain(services: ReadonlySet<string>): void {
    for (const service of this.#budgets.keys()) if (!services.has(service)) this.#budgets.delete(service);
  }
}
