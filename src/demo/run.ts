// `zonegate demo` (what `npm start` runs): simulated upstreams in several zones plus the gateway,
// configured from routes.yaml with routing headers on, and a few curl commands to try.
import { loadConfigFile } from '../config/load.ts';
import { consulSchema, type Config } from '../config/schema.ts';
import { runGateway, stopOnSignal, type RunOptions } from '../run.ts';
import { registerInConsul, type Registration } from './consul-registration.ts';
import { startDemoUpstreams, type DemoUpstreams } from './upstreams.ts';

export interface DemoOptions {
  /** register the instances in this Consul and discover them from it instead of the static list */
  readonly consul?: string;
  /** run only the simulated instances (and their Consul registration), for a gateway running elsewhere */
  readonly upstreamsOnly?: boolean;
  readonly stopSignal?: RunOptions['stopSignal'];
}

/** The demo's view of the config: routing headers on, and Consul instead of the static list when asked. */
function demoConfig(config: Config, consul: string | undefined): Config {
  const gateway = { ...config.gateway, routingHeaders: true };
  if (consul === undefined) return { ...config, gateway };
  return { ...config, gateway, discovery: { consul: consulSchema.parse({ address: consul }), static: {} } };
}

function tryThis(base: string, admin: string): string {
  const curl = (args: string, what: string): string => `  curl -si ${args.replace('$URL', base)}\n      # ${what}`;
  return [
    '',
    'zonegate demo is up: simulated instances in sh-a, sh-b (Shanghai) and bj-a (Beijing). Try:',
    curl('$URL/api/order/7', 'no X-Region-ID: the gateway zone sh-a serves (X-Zonegate-Tier: zone)'),
    curl("-H 'X-Region-ID: bj-a' $URL/api/order/7", 'a caller in Beijing lands in bj-a'),
    curl("-H 'X-Region-ID: hz-a' $URL/api/order/7", 'Hangzhou has no instance: a remote city serves the read'),
    curl("-X POST -H 'X-Region-ID: sh-a' $URL/api/inventory", 'only Beijing has inventory: a write is refused (503 remote_write_refused)'),
    curl("-H 'X-User-ID: u42' $URL/api/user/profile", 'sticky: repeat it, the same user stays on one instance'),
    curl("-H 'X-User-ID: u42' $URL/api/catalog/items", 'canary 80/20 split, consistent per user'),
    curl("-H 'X-Release: gray' $URL/api/order/7", 'traffic colouring: the gray release goes to order-v2'),
    curl('$URL/nowhere', '404 route_not_found as JSON'),
    `  npx zonegate explain --path /api/order/7 --method POST --region hz-a   # why, without sending anything`,
    'Response headers X-Zonegate-Upstream / -Tier / -Route say who served and why.',
    `The dashboard (instances, breakers, routes, explain) is at ${admin}/ and Prometheus metrics at ${admin}/metrics. Ctrl-C stops.`,
    '',
  ].join('\n');
}

/** `--upstreams-only`: the instances serve (and stay registered) until the process is told to stop. */
async function serveUntilStopped(instances: DemoUpstreams['instances'], stopSignal: Promise<unknown>): Promise<number> {
  const where = [...new Set(instances.map((instance) => `${instance.zone}: ${instance.host}:${instance.port} ${instance.service}`))];
  process.stderr.write(`zonegate demo instances are up (Ctrl-C stops):\n  ${where.join('\n  ')}\n`);
  await stopSignal;
  return 0;
}

export async function runDemo(configPath: string, options: DemoOptions = {}): Promise<number> {
  const upstreams = await startDemoUpstreams(await loadConfigFile(configPath));
  let registration: Registration | undefined;
  try {
    if (options.consul !== undefined) registration = await registerInConsul(options.consul, upstreams.instances);
    if (options.upstreamsOnly) return await serveUntilStopped(upstreams.instances, options.stopSignal ?? stopOnSignal());
    return await runGateway(configPath, {
      prepare: (config: Config) => demoConfig(config, options.consul),
      stopSignal: options.stopSignal,
      // the demo's hooks run in this process: one gateway, whatever gateway.workers says
      workers: 1,
      onStarted: (gateway) => {
        const { port } = gateway.address;
        process.stderr.write(tryThis(`http://127.0.0.1:${port}`, `http://127.0.0.1:${gateway.adminAddress.port}`));
      },
    });
  } finally {
    await registration?.deregister();
    await upstreams.close();
  }
}
