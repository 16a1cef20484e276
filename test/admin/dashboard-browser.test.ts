// The dashboard in a real browser: headless Chromium (Debian's `chromium` package, driven by playwright-core, which
// downloads nothing) loads the page of a gateway with real loopback instances in three zones under steady load, signs
// in with the admin token, watches the topology, then an instance is killed: its tile turns ejected, the traffic of
// its zone moves to the city tier in the share over the last minute, and the event list says so. Screenshots go to
// test-artifacts/ (ignored by git): dashboard.png before the kill, dashboard-failover.png after.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startGateway, type TestGateway } from '../support/gateway.ts';
import { pollUntil } from '../support/http.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';

const TOKEN = 'dashboard-token-5e1a';
/** in the page: a tier's share over the last minute, as the legend carries it */
/**
 * Waits until `expression` is true in the page, polled from here: the page's own polling (waitForFunction) evaluates
 * the expression with eval in the page, which the dashboard's Content-Security-Policy rightly refuses.
 */
function untilTrue(page: Page, expression: string, ms: number): Promise<true> {
  return pollUntil(async () => ((await page.evaluate(expression)) === true ? true : undefined), ms, expression);
}

const SHARE = `((tier) => Number(document.querySelector('#share-legend [data-tier="' + tier + '"]')?.dataset.share))`;
const ARTIFACTS = join(import.meta.dirname, '..', '..', 'test-artifacts');

/** The system Chromium (CHROMIUM_PATH, else Debian's and other usual paths); undefined when there is none. */
function findChromium(): string | undefined {
  const candidates = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];
  return candidates.find((path): path is string => path !== undefined && path !== '' && existsSync(path));
}

const chromiumPath = findChromium();
const skip = chromiumPath === undefined ? 'no Chromium found: install it (apt-get install chromium) or set CHROMIUM_PATH' : false;

describe('dashboard in headless Chromium', { skip }, () => {
  let gateway: TestGateway;
  const upstreams = new Map<string, TestUpstream>();
  let load: { stop(): Promise<void>; errors: number; sent: number };
  let browser: import('playwright-core').Browser;
  let page: Page;

  before(async () => {
    for (const name of ['orders-sh-a', 'orders-sh-b', 'orders-bj-a', 'users-sh-a']) upstreams.set(name, await startUpstream(name));
    const instance = (id: string, zone: string) => ({ id, address: upstreams.get(id)!.address, zone });
    const config: ConfigInput = {
      gateway: { zone: 'sh-a', adminToken: TOKEN },
      topology: { 'cn-east': { shanghai: ['sh-a', 'sh-b'], hangzhou: ['hz-a'] }, 'cn-north': { beijing: ['bj-a'] } },
      discovery: {
        static: {
          orders: [instance('orders-sh-a', 'sh-a'), instance('orders-sh-b', 'sh-b'), instance('orders-bj-a', 'bj-a')],
          users: [instance('users-sh-a', 'sh-a')],
        },
      },
      routes: [
        { name: 'orders-gray', match: { prefix: '/api/order', headers: { 'X-Release': 'gray' }, methods: ['GET'] }, service: 'orders' },
        { name: 'orders', match: { prefix: '/api/order' }, service: 'orders' },
        { name: 'users', match: { prefix: '/api/user' }, service: 'users', rateLimit: { key: 'ip', rate: '1000/s', burst: 1000 } },
      ],
    };
    gateway = await startGateway(JSON.stringify(config));
    load = steadyLoad(gateway.url);
    const { chromium } = await import('playwright-core');
    browser = await chromium.launch({ executablePath: chromiumPath });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await browser?.close();
    await load?.stop();
    await gateway?.close();
    for (const upstream of upstreams.values()) await upstream.close();
  });

  it('asks for the token, then shows the topology live', async () => {
    await page.goto(gateway.adminUrl + '/');
    await page.locator('#token-form').waitFor({ state: 'visible' });
    await page.fill('#token', TOKEN);
    await page.click('#token-form button');
    await page.locator('#status.live').waitFor();
    // regions → cities → zones, one tile per instance, all healthy
    const regions = await page.locator('.region > h3').allTextContents();
    assert.deepEqual(regions, ['cn-east', 'cn-north']);
    assert.deepEqual(await page.evaluate("[...document.querySelectorAll('.zone-card')].map((zone) => zone.dataset.zone)"), ['sh-a', 'sh-b', 'hz-a', 'bj-a']);
    const tile = page.locator('.tile[data-instance="orders-sh-a"]');
    assert.equal(await tile.getAttribute('data-state'), 'healthy');
    // the figures move without a reload: the tile counts the steady load
    await untilTrue(page, `/^[1-9]/.test(document.querySelector('.tile[data-instance="orders-sh-a"] .figs')?.textContent ?? '')`, 30_000);
    await untilTrue(page, `${SHARE}('zone') > 0.99`, 30_000);
    // the routes table shows the whole match
    const gray = await page.locator('#routes tr[data-route="orders-gray"]').textContent();
    for (const part of ['methods GET', 'prefix /api/order', 'header X-Release: gray']) assert.ok(gray!.includes(part), `${part} in ${gray}`);
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
  });

  it('shows an instance killed: its tile turns ejected, traffic moves to the city tier, events say so', async () => {
    await upstreams.get('orders-sh-a')!.close();
    await page.locator('.tile[data-instance="orders-sh-a"][data-state="ejected"]').waitFor({ timeout: 15_000 });
    // sh-b (same city) takes sh-a's traffic: the city tier's share over the last minute grows, the zone tier's falls
    await untilTrue(page, `${SHARE}('city') > 0.05 && ${SHARE}('zone') < 0.95`, 15_000);
    await page.locator('#events li[data-kind="ejected"]', { hasText: 'orders-sh-a' }).waitFor({ timeout: 15_000 });
    await page.locator('#events li[data-kind="failover"]', { hasText: 'city tier' }).waitFor({ timeout: 15_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard-failover.png'), fullPage: true });
    // retries kept the kill from the callers
    assert.equal(load.errors, 0, `${load.errors} of ${load.sent} requests failed`);
  });
});

/** Requests one after another from the gateway's own zone, until stopped; counts the ones that failed. */
function steadyLoad(url: string): { stop(): Promise<void>; errors: number; sent: number } {
  let running = true;
  const state = {
    errors: 0,
    sent: 0,
    stop: async () => {
      running = false;
      await done;
    },
  };
  const done = (async () => {
    while (running) {
      const path = state.sent % 4 === 3 ? '/api/user/1' : '/api/order/7';
      try {
        const res = await fetch(url + path);
        await res.arrayBuffer();
        if (res.status >= 500) state.errors++;
      } catch {
        state.errors++;
      }
      state.sent++;
      // about 100 requests a second: enough for every figure, little for a shared machine
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return state;
}
