// zone → city → region lookups compiled once from `topology`; the request path only does map reads.
import type { TopologyConfig } from './config/schema.ts';

export type LocalityKind = 'zone' | 'city' | 'region';

/** Where a caller or an instance sits. `zone`/`city` are absent when only a wider level is known. */
export interface Locality {
  readonly kind: LocalityKind;
  readonly zone?: string;
  readonly city?: string;
  readonly region: string;
  /** the canonical name of the most specific level (what logs show as clientLocality) */
  readonly name: string;
}

export interface ZonePlace {
  readonly zone: string;
  readonly city: string;
  readonly region: string;
}

export class Topology {
  readonly #zones = new Map<string, ZonePlace>();
  /** lower-cased zone, city or region name → locality */
  readonly #byName = new Map<string, Locality>();
  readonly #citiesOfRegion = new Map<string, readonly string[]>();
  readonly #zonesOfCity = new Map<string, readonly string[]>();
  readonly regions: readonly string[];

  constructor(config: TopologyConfig) {
    this.regions = Object.keys(config);
    for (const [region, cities] of Object.entries(config)) {
      this.#byName.set(region.toLowerCase(), { kind: 'region', region, name: region });
      this.#citiesOfRegion.set(region, Object.keys(cities));
      for (const [city, zones] of Object.entries(cities)) {
        this.#byName.set(city.toLowerCase(), { kind: 'city', city, region, name: city });
        this.#zonesOfCity.set(city, zones);
        for (const zone of zones) {
          this.#zones.set(zone, { zone, city, region });
          this.#byName.set(zone.toLowerCase(), { kind: 'zone', zone, city, region, name: zone });
        }
      }
    }
  }

  /** The place of a known zone; undefined for a zone the topology does not list (such instances are remote). */
  zone(zone: string): ZonePlace | undefined {
    return this.#zones.get(zone);
  }

  /** Resolves an `X-Region-ID` value (zone, city or region; case-insensitive). */
  resolve(name: string): Locality | undefined {
    return this.#byName.get(name.toLowerCase());
  }

  hasZone(zone: string): boolean {
    return this.#zones.has(zone);
  }

  citiesOf(region: string): readonly string[] {
    return this.#citiesOfRegion.get(region) ?? [];
  }

  zonesOf(city: string): readonly string[] {
    return this.#zonesOfCity.get(city) ?? [];
  }

  /** Every zone, city and region as a caller locality: what tier plans are precomputed for. */
  localities(): Iterable<Locality> {
    return this.#byName.values();
  }

  /** Every (city, region) pair, for diagnostics (`explain`, admin). */
  *cities(): Iterable<{ city: string; region: string }> {
    for (const [region, cities] of this.#citiesOfRegion) for (const city of cities) yield { city, region };
  }
}
