// Outlier detection: one opossum CircuitBreaker per upstream instance, fed the verdict of every try. An open
// breaker ejects its instance from tiers and balancing through the registry's overlay; half-open readmits it so
// that one probe (a real request) can reach it. Three rules open a breaker, as in Envoy's outlier detection with
// `split_external_local_origin_errors`:
// - consecutive local-origin failures (refused/failed connects, resets, per-try timeouts);
// - consecutive failure statuses (502/503/504, and 500 with `failOn500`);
// - opossum's own rule: the failure share over a rolling window, once it holds `volumeThreshold` tries.
// The ejection cap keeps its meaning for ambiguous signals; an instance that refuses connections is a fact, and is
// ejected whatever the cap. Settings follow what matters at one breaker per instance: no percentiles, no snapshots,
// one bucket timer per window length, no opossum timeout (per-try timeouts are the exchange's).
import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import type { BreakerConfig } from '../config/schema.ts';
import type { Verdict } from '../core/failure.ts';
import type { Instance } from '../discovery/instance.ts';
import type { Registry } from '../discovery/registry.ts';
import { publishEvent } from '../observability/events.ts';
import type { Logger } from '../observability/logger.ts';

export type BreakerState = 'closed' | 'open' | 'half-open';

/** `admit`'s answer when the instance must not be tried now (open, or its half-open probe is out). */
export const NOT_ADMITTED = -1;

const MAX_OPEN_MS = 5 * 60_000;
/** buckets of a rolling window */
const BUCKETS = 10;

interface Rotation {
  readonly emitter: EventEmitter;
  readonly timer: NodeJS.Timeout;
}

/** How long the breaker stays open after `trips` consecutive trips: the base, doubled per trip (jittered ±20%), at most 5 min. */
function openTimeMs(baseMs: number, trips: number): number {
  if (trips === 0) return baseMs;
  return Math.min(MAX_OPEN_MS, baseMs * 2 ** trips) * (0.8 + Math.random() * 0.4);
}

/** opossum reads `options.resetTimeout` each time it opens; @types/opossum does not declare `options`. */
function setOpenTime(breaker: CircuitBreaker, ms: number): void {
  (breaker as unknown as { options: { resetTimeout: number } }).options.resetTimeout = ms;
}

// The breaker's action only reports a verdict already reached: the try itself ran outside it.
const SUCCEEDED = Promise.resolve();
const FAILED = Promise.reject(new Error('the try failed'));
FAILED.catch(() => {});
function report(succeeded: boolean): Promise<void> {
  return succeeded ? SUCCEEDED : FAILED;
}
function ignore(): void {}

interface Entry {
  readonly breaker: CircuitBreaker<[boolean], void>;
  readonly instance: Instance;
  /** the settings it was built with, or equal ones a later config compiled */
  settings: BreakerConfig;
  trips: number;
  /** bumped on every open: verdicts of tries admitted before are stale */
  generation: number;
  /** opened while the ejection cap kept its instance eligible (panic mode): its traffic passes through */
  capped: boolean;
  /** the half-open probe is out: no other try until its verdict */
  probing: boolean;
  /** opened on refused connects: ejected whatever the cap */
  unreachable: boolean;
  consecutiveLocal: number;
  consecutiveConnect: number;
  consecutiveStatus: number;
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
   * Asks whether a try may go to `instance` now. Returns the ticket its verdict must be recorded with, or
   * NOT_ADMITTED when the breaker is open or its half-open probe is already out (the exchange picks another
   * instance; that is not a try). In panic mode (open, but the ejection cap kept the instance eligible) the try
   * passes, and only refused connects are still judged.
   */
  admit(instance: Instance, settings: BreakerConfig): number {
    const entry = this.#entry(instance, settings);
    const breaker = entry.breaker;
    if (breaker.closed) return entry.generation;
    if (breaker.halfOpen) {
      if (entry.probing) return NOT_ADMITTED;
      entry.probing = true;
      return entry.generation;
    }
    return entry.capped ? entry.generation : NOT_ADMITTED;
  }

  /**
   * Records the verdict of a try admitted with `ticket`. Resolves once the breaker has taken it (opossum settles
   * its state asynchronously), so the state read after reflects it.
   */
  record(instance: Instance, ticket: number, verdict: Verdict): Promise<unknown> | undefined {
    const entry = this.#entries.get(instance.id);
    // A try admitted before the breaker last opened says nothing of the instance since.
    if (entry === undefined || ticket !== entry.generation) return undefined;
    const breaker = entry.breaker;
    if (verdict === 'none') {
      if (breaker.halfOpen && entry.probing) this.#probeAbandoned(entry);
      return undefined;
    }
    this.#count(entry, verdict);
    if (breaker.halfOpen) {
      // the probe's verdict decides: a success closes, a failure opens again for longer
      entry.probing = false;
      entry.unreachable = verdict === 'connect-failure';
      return breaker.fire(verdict === 'success').catch(ignore);
    }
    const threshold = entry.settings.consecutiveLocalOriginFailures;
    if (breaker.opened) {
      // panic mode: a refused connection is a fact the cap does not weigh
      if (entry.consecutiveConnect >= threshold) this.#ejectUnreachable(entry);
      return undefined;
    }
    if (entry.consecutiveLocal >= threshold || entry.consecutiveStatus >= entry.settings.consecutive5xx) {
      entry.unreachable = entry.consecutiveConnect >= threshold;
      breaker.open();
      return undefined;
    }
    if (verdict === 'success') {
      // What opossum's own call does for a success of a closed breaker — count a fire and a success in the window —
      // without the promises of a call: nearly every try takes this path.
      breaker.emit('fire');
      breaker.emit('success');
      return undefined;
    }
    return breaker.fire(false).catch(ignore);
  }

  /** Shuts every breaker down (timers, listeners); the gateway is stopping. */
  close(): void {
    for (const id of [...this.#entries.keys()]) this.#dispose(id);
  }

  #count(entry: Entry, verdict: Exclude<Verdict, 'none'>): void {
    switch (verdict) {
      case 'success':
        entry.consecutiveLocal = entry.consecutiveConnect = entry.consecutiveStatus = 0;
        return;
      case 'failure-status':
        entry.consecutiveLocal = entry.consecutiveConnect = 0;
        entry.consecutiveStatus++;
        return;
      case 'connect-failure':
        entry.consecutiveLocal++;
        entry.consecutiveConnect++;
        entry.consecutiveStatus = 0;
        return;
      case 'local-failure':
        entry.consecutiveLocal++;
        entry.consecutiveConnect = entry.consecutiveStatus = 0;
        return;
    }
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
    const breaker = new CircuitBreaker(report, {
      timeout: false,
      volumeThreshold: settings.volumeThreshold,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      resetTimeout: settings.resetTimeout,
      rollingCountTimeout: settings.rollingCountTimeout,
      rollingCountBuckets: BUCKETS,
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      rotateBucketController: this.#rotation(settings.rollingCountTimeout),
    });
    const entry: Entry = {
      breaker,
      instance,
      settings,
      trips: 0,
      generation: 0,
      capped: false,
      probing: false,
      unreachable: false,
      consecutiveLocal: 0,
      consecutiveConnect: 0,
      consecutiveStatus: 0,
    };
    breaker.on('open', () => this.#opened(entry));
    breaker.on('halfOpen', () => this.#halfOpened(entry));
    breaker.on('close', () => this.#closed(entry));
    this.#entries.set(instance.id, entry);
    return entry;
  }

  #opened(entry: Entry): void {
    entry.generation++;
    entry.probing = false;
    const { instance } = entry;
    const ejected = entry.unreachable || this.#mayEject(instance, entry.settings.maxEjectionPercent);
    entry.capped = !ejected;
    this.#registry.setEjected(instance.service, instance.id, ejected);
    const fields = { service: instance.service, instance: instance.id, trips: entry.trips, unreachable: entry.unreachable };
    if (ejected) this.#logger.warn(fields, 'breaker opened; instance ejected');
    else this.#logger.warn(fields, 'breaker opened but ejection cap reached; instance stays eligible (panic mode)');
    publishEvent(this.#logger, { kind: ejected ? 'ejected' : 'panic', level: 'warn', message: ejected ? `breaker opened (trip ${entry.trips + 1}); ejected` : 'breaker opened; ejection cap reached, stays eligible', service: instance.service, instance: instance.id, zone: instance.zone });
  }

  /** Panic mode ends for an instance that refuses connections: it leaves its tier whatever the cap. */
  #ejectUnreachable(entry: Entry): void {
    if (!entry.capped) return;
    entry.capped = false;
    entry.unreachable = true;
    this.#registry.setEjected(entry.instance.service, entry.instance.id, true);
    this.#logger.warn({ service: entry.instance.service, instance: entry.instance.id }, 'instance refuses connections; ejected whatever the ejection cap');
    publishEvent(this.#logger, { kind: 'ejected', level: 'warn', message: 'refuses connections; ejected whatever the cap', service: entry.instance.service, instance: entry.instance.id, zone: entry.instance.zone });
  }

  /**
   * The open time grows on each consecutive trip (×2, jittered, capped at 5 min); a close resets it. Set here,
   * before the probe: should it fail, opossum opens again for `resetTimeout`.
   */
  #halfOpened(entry: Entry): void {
    entry.trips++;
    entry.probing = false;
    setOpenTime(entry.breaker, openTimeMs(entry.settings.resetTimeout, entry.trips));
    this.#registry.setEjected(entry.instance.service, entry.instance.id, false);
    publishEvent(this.#logger, { kind: 'probing', level: 'info', message: 'breaker half-open; one request probes it', service: entry.instance.service, instance: entry.instance.id, zone: entry.instance.zone });
  }

  /**
   * A probe whose client went away proves nothing about the instance: the breaker opens again for the same open
   * time as before, neither reset nor grown.
   */
  #probeAbandoned(entry: Entry): void {
    entry.trips--;
    setOpenTime(entry.breaker, openTimeMs(entry.settings.resetTimeout, entry.trips));
    entry.breaker.open();
  }

  #closed(entry: Entry): void {
    entry.trips = 0;
    entry.capped = entry.unreachable = entry.probing = false;
    entry.consecutiveLocal = entry.consecutiveConnect = entry.consecutiveStatus = 0;
    setOpenTime(entry.breaker, entry.settings.resetTimeout);
    this.#registry.setEjected(entry.instance.service, entry.instance.id, false);
    this.#logger.info({ service: entry.instance.service, instance: entry.instance.id }, 'breaker closed; instance readmitted');
    publishEvent(this.#logger, { kind: 'readmitted', level: 'info', message: 'breaker closed; readmitted', service: entry.instance.service, instance: entry.instance.id, zone: entry.instance.zone });
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
