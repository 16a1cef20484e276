// Gateway events for the dashboard's event list: ejections, readmissions, tier failovers, reloads, Consul and Redis
// state changes. Each part publishes where it already logs the change, on a diagnostics channel (free while nobody
// listens). A gateway's parts are all built with its logger, so the logger tells whose event it is: a process running
// several gateways (tests) keeps their lists apart without threading a callback through every constructor.
import { channel, subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Logger } from './logger.ts';

export type GatewayEventKind = 'ejected' | 'panic' | 'probing' | 'readmitted' | 'failover' | 'reload' | 'consul' | 'redis' | 'fault';

export interface GatewayEvent {
  readonly kind: GatewayEventKind;
  /** `warn`: something went wrong; `info`: it went right again, or was asked for */
  readonly level: 'info' | 'warn';
  readonly message: string;
  readonly service?: string;
  readonly instance?: string;
  readonly zone?: string;
  /** a Consul datacenter */
  readonly datacenter?: string;
}

interface Published {
  readonly owner: Logger;
  readonly event: GatewayEvent;
}

const CHANNEL = 'zonegate:events';
const events = channel(CHANNEL);

/** Publishes `event` as one of the gateway whose logger is `owner`. */
export function publishEvent(owner: Logger, event: GatewayEvent): void {
  if (events.hasSubscribers) events.publish({ owner, event } satisfies Published);
}

/** Calls `listener` with every event of the gateway whose logger is `owner`; returns the unsubscribe. */
export function subscribeEvents(owner: Logger, listener: (event: GatewayEvent) => void): () => void {
  const onMessage = (message: unknown): void => {
    const published = message as Published;
    if (published.owner === owner) listener(published.event);
  };
  subscribe(CHANNEL, onMessage);
  return () => void unsubscribe(CHANNEL, onMessage);
}
