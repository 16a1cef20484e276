// The proxy's listeners drain as one: idle keep-alive connections close at once, busy ones once their response is
// out, and whatever is still open when the drain time is up is closed, and the caller told.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Agent, request, type ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { loadConfigText } from '../../src/config/load.ts';
import { ProxyListeners } from '../../src/listener/listeners.ts';
import { createLogger } from '../../src/observability/logger.ts';
import { singleRouteYaml, within } from '../support/http.ts';

const gatewayConfig = loadConfigText(singleRouteYaml('127.0.0.1:1'), 'routes.yaml').gateway;
const logger = createLogger({ destination: { write: () => true } as never });
const noUpgrade = (): void => {};

async function started(handle: (res: ServerResponse) => void): Promise<{ listeners: ProxyListeners; url: string }> {
  const listeners = new ProxyListeners(gatewayConfig, (_req, res) => handle(res), noUpgrade);
  await listeners.listen(gatewayConfig, false, logger);
  return { listeners, url: `http://127.0.0.1:${listeners.address!.port}` };
}

/** A GET on a keep-alive connection; resolves with the status and whether the connection was closed after it. */
function get(url: string, agent: Agent): Promise<{ status: number; closed: Promise<unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}/`, { agent }, (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode!, closed: once(req.socket!, 'close') }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('ProxyListeners drain', () => {
  it('closes an idle keep-alive connection at once and resolves without the drain time running out', async () => {
    const { listeners, url } = await started((res) => res.end('ok'));
    const agent = new Agent({ keepAlive: true });
    const answered = await get(url, agent);
    assert.equal(answered.status, 200);
    let timedOut = false;
    await within(listeners.drain(10_000, () => (timedOut = true)), 5_000, 'the drain of an idle connection');
    await within(answered.closed, 5_000, 'the idle connection to close');
    assert.equal(timedOut, false);
    agent.destroy();
  });

  it('closes a connection whose response never ends when the drain time is up, and says so once', async () => {
    let arrived!: () => void;
    const requestIn = new Promise<void>((resolve) => (arrived = resolve));
    const { listeners, url } = await started(() => arrived()); // never answers
    const agent = new Agent({ keepAlive: true });
    const pending = get(url, agent).catch((err: unknown) => err);
    await within(requestIn, 5_000, 'the request to reach the handler');
    let timeouts = 0;
    const drainStarted = performance.now();
    await within(listeners.drain(300, () => timeouts++), 5_000, 'the drain to end at its deadline');
    assert.ok(performance.now() - drainStarted >= 250, 'the drain waited for its deadline');
    assert.equal(timeouts, 1);
    assert.ok((await pending) instanceof Error, 'the client saw its connection closed');
    agent.destroy();
  });
});
