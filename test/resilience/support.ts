// Shared setup for the resilience suites: real loopback upstreams that fail on command (refuse, reset,
// hang, answer 503), breaker-state waits, and the access lines of the requests a test sent.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { Instance } from '../../src/discovery/instance.ts';
import type { BreakerState } from '../../src/resilience/breakers.ts';
import { pollUntil } from '../support/http.ts';
import { echo, type TestUpstream, type UpstreamHandler } from '../support/upstream.ts';
import { accessLineOf, startZonedGateway, type Reply, type RequestOptions, type ZonedGateway, type ZonedGatewayOptions } from '../routing/support.ts';

export type { ZonedGateway };

/** How an upstream fails: refuse = its server is closed; reset = the socket dies before any header; hang = never answers. */
export type FailureMode = 'refuse' | 'reset' | 'hang' | '503';

/** Answers `status` with an empty body once the request body has been read. */
export function answer(status: number): UpstreamHandler {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(status, { 'content-length': 0 });
      res.end();
    });
  };
}

const reset: UpstreamHandler = (req) => req.socket.destroy();
const hang: UpstreamHandler = (req) => void req.resume();

/** Makes `upstream` fail the `mode` way from now on; `refuse` closes its server (the port then refuses). */
export async function failWith(upstream: TestUpstream, mode: FailureMode): Promise<void> {
  switch (mode) {
    case 'refuse':
      return upstream.close();
    case 'reset':
      return upstream.handle(reset);
    case 'hang':
      return upstream.handle(hang);
    case '503':
      return upstream.handle(answer(503));
  }
}

/** The gateway's current view of instance `id` of service `app` (ejected flag included). */
function instanceOf(zoned: ZonedGateway, id: string, service = 'app'): Instance {
  const instance = zoned.gateway.registry.snapshot(service)?.instances.find((i) => i.id === id);
  assert.ok(instance, `no instance ${id} of ${service}`);
  return instance;
}

export function stateOf(zoned: ZonedGateway, id: string): BreakerState {
  return zoned.gateway.breakers.state(instanceOf(zoned, id));
}

/** Ids of the instances of `app` the registry currently lists as ejected, sorted. */
export function ejectedIds(zoned: ZonedGateway, service = 'app'): string[] {
  return zoned.gateway.registry.snapshot(service)!.instances.filter((i) => i.ejected).map((i) => i.id);
}

/** Resolves, with the milliseconds it took, once instance `id`'s breaker is in `state` (polled). */
export async function waitForState(zoned: ZonedGateway, id: string, state: BreakerState, ms = 3000): Promise<number> {
  const started = performance.now();
  await pollUntil(() => (stateOf(zoned, id) === state ? true : undefined), ms, `the breaker of ${id} to be ${state}`);
  return performance.now() - started;
}

/**
 * Sends requests one after another until `done` holds (checked after each reply), at most `limit`;
 * resolves with every reply sent.
 */
export async function requestUntil(
  zoned: ZonedGateway,
  done: () => boolean,
  options: RequestOptions = {},
  limit = 200,
): Promise<Reply[]> {
  const replies: Reply[] = [];
  while (!done()) {
    if (replies.length >= limit) throw new Error(`condition not reached after ${limit} requests`);
    replies.push(await zoned.client.request(options));
  }
  return replies;
}

/** The access lines of `replies`, in the same order. */
export function accessLines(zoned: ZonedGateway, replies: readonly Reply[]): Promise<Record<string, unknown>[]> {
  return Promise.all(replies.map((reply) => accessLineOf(zoned.log, reply)));
}

/** The `tries` (instance id per attempt) of an access line. */
export function triesOf(line: Record<string, unknown>): string[] {
  return line.tries as string[];
}

/** Requests received by the upstream of instance `id`. */
export function received(zoned: ZonedGateway, id: string): number {
  return zoned.upstreams.get(id)!.requests.length;
}

/** Makes instance `id`'s upstream answer normally again (the echo it started with). */
export function recover(zoned: ZonedGateway, id: string): void {
  zoned.upstreams.get(id)!.handle(echo(id));
}

/** A zoned gateway (test/routing/support.ts) closed when the test ends. */
export async function zonedGateway(t: TestContext, options: ZonedGatewayOptions): Promise<ZonedGateway> {
  const zoned = await startZonedGateway(options);
  t.after(() => zoned.close());
  return zoned;
}
