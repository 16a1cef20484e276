// The caller's locality from X-Region-ID, under `gateway.trustRegionHeader`. Absent, unknown or untrusted
// values fall back to the gateway's own zone; an unknown value is counted and logged, never refused.
import type { GatewayConfig } from '../config/schema.ts';
import type { Logger } from '../observability/logger.ts';
import type { Locality, Topology } from '../topology.ts';

const WARN_INTERVAL_MS = 10_000;

export class CallerLocality {
  readonly #topology: Topology;
  readonly #home: Locality;
  readonly #policy: GatewayConfig['trustRegionHeader'];
  readonly #logger: Logger;
  /** unknown X-Region-ID values seen since start (a metric reads it) */
  unknownCount = 0;
  #suppressed = 0;
  #lastWarnAt = -Infinity;

  constructor(topology: Topology, gateway: GatewayConfig, logger: Logger) {
    this.#topology = topology;
    this.#home = topology.resolve(gateway.zone)!;
    this.#policy = gateway.trustRegionHeader;
    this.#logger = logger;
  }

  get home(): Locality {
    return this.#home;
  }

  /** Whether X-Region-ID from this peer may choose a locality. */
  trusts(peerTrusted: boolean): boolean {
    return this.#policy === 'any' || (this.#policy === 'peers' && peerTrusted);
  }

  resolve(header: string | null, peerTrusted: boolean): Locality {
    if (header === null || header === '' || !this.trusts(peerTrusted)) return this.#home;
    const locality = this.#topology.resolve(header);
    if (locality !== undefined) return locality;
    this.#unknown(header);
    return this.#home;
  }

  /** What a trusted X-Region-ID would resolve to, without counting or logging an unknown value (explain asks this). */
  preview(header: string | null): Locality {
    return (header === null || header === '' ? undefined : this.#topology.resolve(header)) ?? this.#home;
  }

  #unknown(value: string): void {
    this.unknownCount++;
    const now = performance.now();
    // One warning per interval: a misconfigured client fleet must not flood the log.
    if (now - this.#lastWarnAt < WARN_INTERVAL_MS) {
      this.#suppressed++;
      return;
    }
    this.#logger.warn(
      { regionHeader: value.slice(0, 64), suppressed: this.#suppressed, fallback: this.#home.name },
      'unknown X-Region-ID; using the gateway zone',
    );
    this.#lastWarnAt = now;
    this.#suppressed = 0;
  }
}
