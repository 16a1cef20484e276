// One opossum CircuitBreaker per upstream instance (outlier detection). An open breaker ejects its
// instance from tiers and balancing through the registry's overlay; half-open readmits it so one probe
// can reach it. Settings follow what matters at one breaker per instance: no percentiles (a failure would
// sort the window), no snapshots and one bucket timer per window length (not two timers per breaker), no
// opossum timeout (its abort controller is shared by every call of a breaker; undici's timeouts do that job).
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerConfig } from '../config/schema.ts';
import type { Instance } from '../discovery/instance.ts';
import type { Registry } from '../discovery/registry.ts';
import type { Logger } from '../observability/logger.ts';
import { UpstreamFailure } from '../proxy/forward.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

const MAX_OPEN_MS = 5 * 60_000;
/** buckets of a rolling window */
const BUCKETS = 10;

interface Rotation {
  readonly emitter: EventEmitter;
  readonly timer: NodeJS.Timeout;
}

/**
 * The failures a breaker counts; anything else (4xx, client aborts, the gateway's own refusals, a 500 held
 * back for a retry unless `failOn500`) is a success.
 */
function countsAsFailure(err: unknown, settings: BreakerConfig): boolean {
  if (!(err instanceof UpstreamFailure)) return true;
  if (err.kind === 'status' && err.status === 500) return settings.failOn500;
  return err.kind !== 'client-closed' && err.kind !== 'body-too-large';
}

function isClientClosed(err: unknown): boolean {
  return err instanceof UpstreamFailure && err.kind === 'client-closed';
}

/** How long the breaker stays open after `trips` consecutive trips: the base, doubled per trip (jittered ±20%), at most 5 min. */
function openTimeMs(baseMs: number, trips: number): number {
  if (trips === 0) return baseMs;
  return Math.min(MAX_OPEN_MS, baseMs * 2 ** trips) * (0.8 + Math.random() * 0.4);
}

type Attempt = () => Promise<unknown>;

/**
 * opossum closes a half-open breaker on any success, even one of a call sent before the breaker opened (and
 * reopens it on any such failure): that call says nothing about the instance after its open time. Each call
 * carries the breaker's generation, bumped on every open, and resolves with it; while opossum handles the
 * outcome of an older generation, `stale` is set and the close it would cause is skipped (such a failure is
 * filtered, so it cannot open the breaker either).
 */
class GenerationalBreaker extends CircuitBreaker<[Attempt, number], number> {
  stale = false;

  override close(): void {
    if (!this.stale) super.close();
  }
}

/** The action of every breaker: the attempt, then the generation it was sent in, for the outcome's judge. */
async function run(attempt: Attempt, generation: number): Promise<number> {
  await attempt();
  return generation;
}

/** opossum reads `options.resetTimeout` each time it opens; @types/opossum does not declare `options`. */
function setOpenTime(breaker: GenerationalBreaker, ms: number): void {
  (breaker as unknown as { options: { resetTimeout: number } }).options.resetTimeout = ms;
}

interface Entry {
  readonly breaker: GenerationalBreaker;
  readonly instance: Instance;
  /** the settings it was built with, or equal ones a later config compiled */
  settings: BreakerConfig;
  trips: number;
  /** bumped on every open: calls sent before are stale for the breaker's state */
  generation: number;
  /** opened while the ejection cap kept its instance eligible (panic mode): its traffic passes through */
  capped: boolean;
}

export class Breakers {
  readonly #entries = new Map<string, Entry>();
  readonly #registry: Registry;
  readonly #logger: Logger;
  /** by rolling window length: one interval rotates the buckets of every breaker with that window */
  readonly #rotations = new Map<number, Rotation>();
  #current: ReadonlyMap<string, BreakerConfig> = new Map();

  constructor(registry: Registry, logger: Logger) {
    this.#registry = registry;
    this.#logger = logger;
    registry.on('change', () => this.#disposeDeparted());
    registry.on('removed', () => this.#disposeDeparted());
  }

  /** The breaker settings of the running config, per service (RouteTable.breakers); set on start and on every reload. */
  configure(current: ReadonlyMap<string, BreakerConfig>): void {
    this.#current = current;
  }

  state(instance: Instance): BreakerState {
    const breaker = this.#entries.get(instance.id)?.breaker;
    if (breaker === undefined || breaker.closed) return 'closed';
    return breaker.halfOpen ? 'half-open' : 'open';
  }

  get size(): number {
    return this.#entries.size;
  }

  /**
   * Runs one attempt through the instance's breaker. Rejects with opossum's EOPENBREAKER (without running
   * the attempt) when the breaker is open or its half-open probe is already out, except in panic mode: an
   * open breaker whose instance the ejection cap kept eligible runs the attempt uncounted. Settles when the
   * attempt does, rejecting with its error; what it resolves with is not the attempt's value.
   */
  fire(instance: Instance, settings: BreakerConfig, attempt: Attempt): Promise<unknown> {
    const entry = this.#entry(instance, settings);
    if (entry.capped && entry.breaker.opened) return attempt();
    return entry.breaker.fire(attempt, entry.generation);
  }

  /** Shuts every breaker down (timers, listeners); the gateway is stopping. */
  close(): void {
    for (const id of [...this.#entries.keys()]) this.#dispose(id);
  }

  #entry(instance: Instance, settings: BreakerConfig): Entry {
    const existing = this.#entries.get(instance.id);
    if (existing !== undefined) {
      // Requests that began under an earlier config still carry its settings: only the running config's may
      // replace a breaker, or old and new requests would rebuild it in turn (readmitting an ejected instance).
      if (existing.settings === settings || settings !== this.#current.get(instance.service)) return existing;
      // A reload compiled the settings anew (the same object for every request until the next one).
      if (JSON.stringify(existing.settings) === JSON.stringify(settings)) {
        existing.settings = settings;
        return existing;
      }
      // Changed settings apply to a breaker built with them: opossum fixes its window at construction.
      this.#logger.info({ service: instance.service, instance: instance.id }, 'breaker settings changed; the instance starts with a fresh breaker');
      this.#dispose(instance.id);
    }
    const breaker = new GenerationalBreaker(run, {
      timeout: false,
      volumeThreshold: settings.volumeThreshold,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      resetTimeout: settings.resetTimeout,
      rollingCountTimeout: settings.rollingCountTimeout,
      rollingCountBuckets: BUCKETS,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.#rotation(settings.rollingCountTimeout),
      // opossum passes the call's arguments after the error; @types/opossum declares the error only.
      errorFilter: ((err: unknown, _attempt: Attempt, generation: number): boolean => {
        if (generation !== entry.generation) {
          breaker.stale = true;
          return true;
        }
        if (breaker.halfOpen && isClientClosed(err)) {
          this.#probeAbandoned(entry);
          return false;
        }
        return !countsAsFailure(err, entry.settings);
      }) as (err: unknown) => boolean,
    });
    const entry: Entry = { breaker, instance, settings, trips: 0, generation: 0, capped: false };
    // Around opossum's own success listener (which closes a half-open breaker): a resolved call reports its
    // generation first, a filtered error was judged by errorFilter.
    breaker.prependListener('success', (result: unknown) => {
      if (typeof result === 'number' && result !== entry.generation) breaker.stale = true;
    });
    breaker.on('success', () => {
      breaker.stale = false;
    });
    breaker.on('open', () => this.#opened(entry));
    breaker.on('halfOpen', () => this.#halfOpened(entry));
    breaker.on('close', () => this.#closed(entry));
    this.#entries.set(instance.id, entry);
    return entry;
  }

  #opened(entry: Entry): void {
    entry.generation++;
    const { instance } = entry;
    const ejected = this.#mayEject(instance, entry.settings.maxEjectionPercent);
    entry.capped = !ejected;
    this.#registry.setEjected(instance.service, instance.id, ejected);
    if (ejected) this.#logger.warn({ service: instance.service, instance: instance.id, trips: entry.trips }, 'breaker opened; instance ejected');
    else this.#logger.warn({ service: instance.service, instance: instance.id }, 'breaker opened but ejection cap reached; instance stays eligible (panic mode)');
  }

  /**
   * The open time grows on each consecutive trip (×2, jittered, capped at 5 min); a close resets it. Set here,
   * before the probe: should it fail, opossum opens again for `resetTimeout`.
   */
  #halfOpened(entry: Entry): void {
    entry.trips++;
    setOpenTime(entry.breaker, openTimeMs(entry.settings.resetTimeout, entry.trips));
    this.#registry.setEjected(entry.instance.service, entry.instance.id, false);
  }

  /**
   * A probe whose client went away proves nothing about the instance: the breaker opens again (failing the
   * probe is the only way opossum offers short of closing) for the same open time as before, neither reset
   * nor grown.
   */
  #probeAbandoned(entry: Entry): void {
    entry.trips--;
    setOpenTime(entry.breaker, openTimeMs(entry.settings.resetTimeout, entry.trips));
  }

  #closed(entry: Entry): void {
    entry.trips = 0;
    entry.capped = false;
    setOpenTime(entry.breaker, entry.settings.resetTimeout);
    this.#registry.setEjected(entry.instance.service, entry.instance.id, false);
    this.#logger.info({ service: entry.instance.service, instance: entry.instance.id }, 'breaker closed; instance readmitted');
  }

  /**
   * Ejection cap: at most `maxEjectionPercent` of a zone's instances of a service may be ejected at once,
   * so a cascading failure cannot empty a tier by itself; but, as in Envoy, one may always be, or a zone
   * of one or two instances could never shed a dead one and would keep sending it its traffic.
   */
  #mayEject(instance: Instance, maxEjectionPercent: number): boolean {
    const snapshot = this.#registry.snapshot(instance.service);
    if (snapshot === undefined) return true;
    let inZone = 0;
    let alreadyEjected = 0;
    for (const i of snapshot.instances) {
      if (i.zone !== instance.zone) continue;
      inZone++;
      if (i.ejected && i.id !== instance.id) alreadyEjected++;
    }
    return alreadyEjected === 0 || (alreadyEjected + 1) / inZone <= maxEjectionPercent / 100;
  }

  #disposeDeparted(): void {
    if (this.#entries.size === 0) return;
    const live = new Set<string>();
    for (const service of this.#registry.services()) for (const i of this.#registry.snapshot(service)!.instances) live.add(i.id);
    for (const id of [...this.#entries.keys()]) if (!live.has(id)) this.#dispose(id);
  }

  #dispose(id: string): void {
    const entry = this.#entries.get(id);
    if (entry === undefined) return;
    this.#entries.delete(id);
    entry.breaker.shutdown();
    this.#registry.setEjected(entry.instance.service, id, false);
    const windowMs = entry.settings.rollingCountTimeout;
    const rotation = this.#rotations.get(windowMs);
    if (rotation !== undefined && rotation.emitter.listenerCount('rotate') === 0) {
      clearInterval(rotation.timer);
      this.#rotations.delete(windowMs);
    }
  }

  /** The rotation of `windowMs` windows: a bucket every tenth of the window, started with its first breaker. */
  #rotation(windowMs: number): EventEmitter {
    let rotation = this.#rotations.get(windowMs);
    if (rotation === undefined) {
      const emitter = new EventEmitter();
      emitter.setMaxListeners(0);
      const timer = setInterval(() => emitter.emit('rotate'), Math.max(1, windowMs / BUCKETS));
      timer.unref();
      rotation = { emitter, timer };
      this.#rotations.set(windowMs, rotation);
    }
    return rotation.emitter;
  }
}
