// `zonegate demo` (what `npm start` runs): simulated upstreams in several zones plus the gateway,
// configured from routes.yaml with routing headers on, and a few curl commands to try.
import { loadConfigFile } from '../config/load.ts';
import { consulSchema, listenerTlsSchema, parseHostPort, type Config } from '../config/schema.ts';
import type { Server } from 'node:http';
import { stopOnSignal } from '../lifecycle.ts';
import { runGateway, type RunOptions } from '../run.ts';
import { demoCertificate, type DemoCertificate } from './certificate.ts';
import { registerInConsul, type Registration } from './consul-registration.ts';
import { startDemoControl } from './control.ts';
import { startDemoUpstreams, type DemoUpstreams } from './upstreams.ts';

export interface DemoOptions {
  /** register the instances in this Consul and discover them from it instead of the static list */
  readonly consul?: string;
  /** run only the simulated instances (and their Consul registration), for a gateway running elsewhere */
  readonly upstreamsOnly?: boolean;
  readonly stopSignal?: RunOptions['stopSignal'];
  /** also serve HTTPS and HTTP/2 with a certificate made for the demo (on $ZONEGATE_TLS_LISTEN, default :8443) */
  readonly tls?: boolean;
}

/** The demo's view of the config: routing headers on, and Consul instead of the static list when asked. */
function demoConfig(config: Config, consul: string | undefined, certificate: DemoCertificate | undefined): Config {
  const tls =
    certificate === undefined
      ? config.gateway.tls
      : listenerTlsSchema.parse({ listen: process.env.ZONEGATE_TLS_LISTEN ?? '0.0.0.0:8443', cert: certificate.cert, key: certificate.key });
  const gateway = { ...config.gateway, routingHeaders: true, tls };
  if (consul === undefined) return { ...config, gateway };
  return { ...config, gateway, discovery: { consul: consulSchema.parse({ address: consul }), static: {}, tls: config.discovery.tls } };
}

function tryThisOverTls(base: string, certificate: DemoCertificate): string {
  return [
    `HTTPS and HTTP/2 on ${base} (a certificate made for this demo, for localhost and 127.0.0.1):`,
    `  curl -si --cacert ${certificate.cert} ${base}/api/order/7`,
    `  curl -si --http2 --cacert ${certificate.cert} -H 'X-Region-ID: bj-a' ${base}/api/order/7`,
    '      # the access log says proto "h2" and scheme "https"',
    '',
  ].join('\n');
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
    `The live dashboard (topology, traffic by tier, breakers, events) is at ${admin}/ and Prometheus metrics at ${admin}/metrics. Ctrl-C stops.`,
    '',
  ].join('\n');
}

/** How to break the running demo, once its control listener is up (printed after tryThis). */
function breakThis(control: string | undefined, admin: string, token: boolean): string {
  const auth = token ? `-H "Authorization: Bearer $ZONEGATE_ADMIN_TOKEN" ` : '';
  const lines = ['Break something and watch the dashboard: traffic moves from sh-a to sh-b within a second.'];
  if (control !== undefined) {
    lines.push(
      `  npx zonegate drill --demo ${control} --scenario zone-dark`,
      '      # every sh-a instance goes dark for 5 s under a steady load; then errors, latency and recovery (RTO)',
    );
  }
  lines.push(
    `  curl -X PUT ${auth}-d '{"abort":{"percent":50,"status":503}}' ${admin}/admin/faults/orders`,
    `      # half of /api/order is answered 503 by the gateway; clear it: curl -X DELETE ${auth}${admin}/admin/faults/orders`,
    '',
  );
  return lines.join('\n');
}

/** Where the demo's control listener goes: ZONEGATE_DEMO_CONTROL (host:port; always bound to 127.0.0.1). */
const DEMO_CONTROL = process.env.ZONEGATE_DEMO_CONTROL || '127.0.0.1:9909';

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
  const certificate = options.tls ? demoCertificate() : undefined;
  let control: Server | undefined;
  try {
    if (options.consul !== undefined) registration = await registerInConsul(options.consul, upstreams.instances);
    if (options.upstreamsOnly) return await serveUntilStopped(upstreams.instances, options.stopSignal ?? stopOnSignal());
    return await runGateway(configPath, {
      prepare: (config: Config) => demoConfig(config, options.consul, certificate),
      stopSignal: options.stopSignal,
      // the demo's hooks run in this process: one gateway, whatever gateway.workers says
      workers: 1,
      onStarted: async (gateway) => {
        const base = `http://127.0.0.1:${gateway.address.port}`;
        const admin = `http://127.0.0.1:${gateway.adminAddress.port}`;
        process.stderr.write(tryThis(base, admin));
        if (certificate !== undefined) process.stderr.write(tryThisOverTls(`https://localhost:${gateway.tlsAddress!.port}`, certificate));
        const address = parseHostPort(DEMO_CONTROL);
        control = address && (await startDemoControl(upstreams, { gateway: base, admin }, address).catch((err: unknown) => {
          process.stderr.write(`the demo's control listener (${DEMO_CONTROL}) is off: ${String(err)}\n`);
          return undefined;
        }));
        const at = control ? `http://127.0.0.1:${(control.address() as { port: number }).port}` : undefined;
        process.stderr.write(breakThis(at, admin, gateway.config.gateway.adminToken !== ''));
      },
    });
  } finally {
    control?.close();
    await registration?.deregister();
    certificate?.remove();
    await upstreams.close();
  }
}
