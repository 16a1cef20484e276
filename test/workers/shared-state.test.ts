// What workers share through the primary, as real processes: Redis limits stay exact across workers (each worker
// its own leases), and Consul is watched once per service and datacenter whatever the number of workers.
import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import type { Agent } from 'node:http';
import type { ConfigInput } from '../../src/config/schema.ts';
import { startConsulFixture, type ConsulFixture } from '../support/consul-fixture.ts';
import { isStartedLine, launchGatewayProcess, type LaunchedGateway } from '../support/gateway-process.ts';
import { pollUntil } from '../support/http.ts';
import { SHARED_REDIS_URL, uniqueKeyPrefix } from '../support/redis.ts';
import { startUpstream, type TestUpstream } from '../support/upstream.ts';
import { ask, connectionPerWorker } from '../support/workers.ts';

const TOPOLOGY = { 'cn-east': { shanghai: ['sh-a', 'sh-b'] } };

describe('workers sharing state through the primary', { timeout: 120_000 }, () => {
  let gateway: LaunchedGateway | undefined;
  let consul: ConsulFixture | undefined;
  let agents: Map<number, Agent> | undefined;
  const upstreams: TestUpstream[] = [];

  afterEach(async () => {
    for (const agent of agents?.values() ?? []) agent.destroy();
    if (gateway) assert.equal(await gateway.stop(), 0, gateway.stderr());
    await consul?.close();
    await Promise.all(upstreams.splice(0).map((upstream) => upstream.close()));
    gateway = consul = agents = undefined;
  });

  async function start(config: ConfigInput): Promise<string> {
    gateway = await launchGatewayProcess(config);
    const started = await gateway.waitForLine(isStartedLine, 30_000, 'the start line');
    const adminUrl = `http://127.0.0.1:${started.admin.port}`;
    await pollUntil(async () => ((await fetch(`${adminUrl}/readyz`)).status === 200 ? true : undefined), 20_000, '/readyz 200');
    return `http://127.0.0.1:${started.listen.port}`;
  }

  test('a Redis limit admits its burst across both workers, exactly', async () => {
    const upstream = await startUpstream('a1');
    upstreams.push(upstream);
    const url = await start({
      gateway: { zone: 'sh-a', routingHeaders: true, workers: 2 },
      topology: TOPOLOGY,
      discovery: { static: { app: [{ address: upstream.address, zone: 'sh-a' }] } },
      redis: { url: SHARED_REDIS_URL, keyPrefix: uniqueKeyPrefix('workers'), onError: 'deny' },
      routes: [
        { name: 'probe', match: { prefix: '/probe' }, service: 'app' },
        { name: 'limited', match: { prefix: '/limited' }, service: 'app', rateLimit: { key: 'route', rate: '1/m', burst: 6 } },
      ],
    });
    agents = await connectionPerWorker(url, 2);
    const [first, second] = [...agents.values()];
    const replies = [];
    for (let i = 0; i < 12; i++) replies.push(await ask(url, '/limited', i % 2 === 0 ? first : second));
    assert.equal(replies.filter((reply) => reply.status === 200).length, 6, replies.map((r) => r.status).join());
    assert.equal(replies.filter((reply) => reply.status === 429).length, 6);
    assert.equal(new Set(replies.filter((reply) => reply.status === 200).map((reply) => reply.pid)).size, 2, 'both workers admitted');
  });

  test('Consul is watched once per service and datacenter, and every worker gets its instances', async () => {
    consul = await startConsulFixture({ datacenters: ['dc1'] });
    const [a1, b1] = [await startUpstream('a1'), await startUpstream('b1')];
    upstreams.push(a1, b1);
    consul.register('dc1', { service: 'orders', id: 'a1', port: a1.port, address: '127.0.0.1', zone: 'sh-a' });
    const url = await start({
      gateway: { zone: 'sh-a', routingHeaders: true, workers: 2 },
      topology: TOPOLOGY,
      discovery: { consul: { address: consul.address, datacenters: ['dc1'], wait: '30s' } },
      routes: [{ name: 'orders', match: { prefix: '/' }, service: 'orders' }],
    });
    agents = await connectionPerWorker(url, 2);
    consul.register('dc1', { service: 'orders', id: 'b1', port: b1.port, address: '127.0.0.1', zone: 'sh-b' });
    for (const [pid, agent] of agents) {
      await pollUntil(
        async () => ((await ask(url, '/x', agent, { 'x-region-id': 'sh-b' })).headers['x-zonegate-upstream'] === 'consul-fixture/b1@dc1' ? true : undefined),
        10_000,
        `worker ${pid} serving the instance registered after start`,
      );
    }
    const health = consul.requests.filter((request) => request.path === '/v1/health/service/orders');
    assert.equal(health.filter((request) => request.query.index === undefined).length, 1, 'one first query: one watch');
    await consul.waitForBlocking(1);
    assert.equal(consul.pendingBlocking(), 1);
  });
});
