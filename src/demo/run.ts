// `zonegate demo` (what `npm start` runs): simulated upstreams in several zones plus the gateway,
// configured from routes.yaml with routing headers on, and a few curl commands to try.
import { loadConfigFile } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { runGateway } from '../run.ts';
import { startDemoUpstreams } from './upstreams.ts';

function tryThis(base: string): string {
  return [
    '',
    'zonegate demo is up. Try:',
    `  curl -si ${base}/api/order/7                                  # served from this gateway's zone`,
    `  curl -si -H 'X-Region-ID: bj-a' ${base}/api/order/7           # a caller in Beijing`,
    `  curl -si -H 'X-User-ID: u42' ${base}/api/user/profile         # sticky: same user, same instance`,
    `  curl -si ${base}/nowhere                                      # 404 route_not_found, JSON`,
    'Response headers X-Zonegate-Upstream / -Tier / -Route say who served and why. Ctrl-C stops.',
    '',
  ].join('\n');
}

export async function runDemo(configPath: string): Promise<number> {
  const upstreams = await startDemoUpstreams(await loadConfigFile(configPath));
  try {
    return await runGateway(configPath, {
      prepare: (config: Config) => ({ ...config, gateway: { ...config.gateway, routingHeaders: true } }),
      onStarted: (gateway) => {
        const { port } = gateway.address;
        process.stderr.write(tryThis(`http://127.0.0.1:${port}`));
      },
    });
  } finally {
    await upstreams.close();
  }
}
