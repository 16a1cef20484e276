// Gateway events on their diagnostics channel: each gateway hears its own parts only (they share its logger).
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { publishEvent, subscribeEvents, type GatewayEvent } from '../../src/observability/events.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { captureLog } from '../support/gateway.ts';

it('delivers an event to the gateway whose logger published it, not to another, and not after unsubscribing', () => {
  const mine = createLogger({ destination: captureLog().stream });
  const other = createLogger({ destination: captureLog().stream });
  const heard: GatewayEvent[] = [];
  const unsubscribe = subscribeEvents(mine, (event) => heard.push(event));
  const event: GatewayEvent = { kind: 'ejected', level: 'warn', message: 'breaker opened', instance: 'a' };
  publishEvent(mine, event);
  publishEvent(other, { ...event, instance: 'b' });
  assert.deepEqual(heard, [event]);
  unsubscribe();
  publishEvent(mine, event);
  assert.equal(heard.length, 1);
});
