// Counters that outlive their worker. A replaced worker starts counting from 0; summed as they are, the gateway's
// counters would drop by what the dead worker had counted, which Prometheus reads as a reset of the whole
// series. So the primary keeps each slot's last scraped counters and histograms, and adds them to its successor's.
// What the dead worker counted after the last scrape is lost; the sums never go down.
import { AggregatorRegistry, type MetricObjectWithValues, type MetricValue } from 'prom-client';

export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

export interface SlotMetrics {
  readonly index: number;
  readonly pid: number;
  readonly metrics: MetricsJson;
}

function cumulative(metrics: MetricsJson): MetricsJson {
  // prom-client's types say a numeric enum; its JSON holds the type's name
  return metrics.filter((metric) => ['counter', 'histogram'].includes(metric.type as unknown as string));
}

async function sum(a: MetricsJson | undefined, b: MetricsJson): Promise<MetricsJson> {
  if (a === undefined) return b;
  return (await AggregatorRegistry.aggregate([a, b]).getMetricsAsJSON()) as MetricsJson;
}

export class CarriedCounters {
  /** per slot: the worker last scraped there */
  readonly #last = new Map<number, SlotMetrics>();
  /** per slot: what the workers before it counted */
  readonly #carried = new Map<number, MetricsJson>();

  /** What to aggregate: each answer with its slot's carried counts; a silent slot's last counts (it is being replaced). */
  async collect(slots: readonly number[], answers: readonly SlotMetrics[]): Promise<MetricsJson[]> {
    const out: MetricsJson[] = [];
    for (const index of slots) {
      const answer = answers.find((a) => a.index === index);
      const last = this.#last.get(index);
      if (answer !== undefined && last !== undefined && last.pid !== answer.pid) {
        this.#carried.set(index, await sum(this.#carried.get(index), cumulative(last.metrics)));
      }
      if (answer !== undefined) {
        this.#last.set(index, answer);
        out.push(answer.metrics);
      } else if (last !== undefined) {
        out.push(cumulative(last.metrics));
      }
      const carried = this.#carried.get(index);
      if (carried !== undefined) out.push(carried);
    }
    return out;
  }
}
