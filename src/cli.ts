// zonegate run | validate | explain | demo | drill | schema | health | --version | --help
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { probeHealth } from './admin/probe.ts';
import { ConfigError } from './config/errors.ts';
import { loadConfigFile } from './config/load.ts';
import { configJsonSchema, type Config } from './config/schema.ts';
import type { Registry } from './discovery/registry.ts';
import { loadStatic } from './discovery/static.ts';
import { loadCertificateSet } from './listener/certificates.ts';
import { CallerLocality } from './listener/locality.ts';
import { createLogger, type Logger } from './observability/logger.ts';
import { explain, formatExplanation } from './routing/explain.ts';
import { createUpstreams } from './routing/pick.ts';
import { RouteTable } from './routing/route-table.ts';
import { runGateway } from './run.ts';
import { Topology } from './topology.ts';
import { parseWorkersOption } from './workers/count.ts';

const USAGE = `usage: zonegate <command> [options]   (config file: --config FILE or the first argument, default ./routes.yaml)

commands:
  zonegate run [--config routes.yaml] [--workers N|auto]
                                           run the gateway (--workers: N processes share the proxy address,
                                           auto: one per core; overrides gateway.workers)
  zonegate validate [routes.yaml]          check a config file; prints ok or file:line:col errors
  zonegate explain --path /api/order/7 [--method POST] [--region sh-b] [--key u42] [--host h] [--config routes.yaml] [--json]
                                           which route, tier and instance would serve a request, and why
  zonegate demo [--config routes.yaml] [--consul http://127.0.0.1:8500] [--upstreams-only] [--tls]
                                           simulated multi-zone upstreams + the gateway on :8080, from the
                                           example routes.yaml shipped with zonegate unless --config names one
                                           (--consul: register them in Consul and discover them from it;
                                           --upstreams-only: the instances without the gateway;
                                           --tls: HTTPS and HTTP/2 on :8443 with a certificate made for the demo)
  zonegate drill [--scenario zone-dark] [--rate 50] [--max-errors 0] [--max-rto 1s] [--config routes.yaml]
                                           failure scenarios under a steady load, on simulated instances;
                                           a table, an HTML report, exit 1 when a target is missed
                                           (zonegate drill --help lists its options)
  zonegate schema                          print the routes.yaml JSON Schema (also shipped as routes.schema.json)
  zonegate health [--config routes.yaml]   exit 0 when the running gateway's admin listener answers /healthz

options:
  -c, --config FILE                        the config file
  -h, --help                               this text
  -v, --version                            the zonegate version`;

/** The package's own files: the example config the demo serves, the version. */
const PACKAGE_ROOT = new URL('../', import.meta.url);
const EXAMPLE_CONFIG = fileURLToPath(new URL('routes.yaml', PACKAGE_ROOT));

function packageVersion(): string {
  const manifest = JSON.parse(readFileSync(new URL('package.json', PACKAGE_ROOT), 'utf8')) as { version: string };
  return manifest.version;
}

async function validate(file: string): Promise<number> {
  try {
    await loadConfigFile(file);
    console.log('ok');
    return 0;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(err.format());
    return 1;
  }
}

interface ExplainArgs {
  path?: string;
  method?: string;
  region?: string;
  key?: string;
  host?: string;
  json?: boolean;
}

/** Answers from the config's static registry, without starting the gateway. */
async function explainCommand(configPath: string, args: ExplainArgs): Promise<number> {
  if (args.path === undefined) {
    console.error('explain needs --path');
    return 2;
  }
  const config = await loadConfigFile(configPath);
  const topology = new Topology(config.topology);
  const upstreams = createUpstreams(topology);
  loadStatic(upstreams.registry, config.discovery);
  const logger = createLogger({ level: 'silent' });
  const routes = new RouteTable(config.routes);
  if (config.discovery.consul) await snapshotFromConsul(config, routes, upstreams.registry, logger);
  const callers = new CallerLocality(topology, config.gateway, logger);
  const certificates = config.gateway.tls === undefined ? undefined : loadCertificateSet(config.gateway.tls);
  const explanation = explain({ routes, callers, upstreams, escapedSlashes: config.gateway.escapedSlashes, certificates }, { ...args, path: args.path });
  console.log(args.json ? JSON.stringify(explanation, null, 2) : formatExplanation(explanation));
  return 0;
}

/** One round of Consul answers (every datacenter) for the routed services without a static list. */
async function snapshotFromConsul(config: Config, routes: RouteTable, registry: Registry, logger: Logger): Promise<void> {
  const { ConsulDiscovery } = await import('./discovery/consul.ts');
  const consul = new ConsulDiscovery(config.discovery.consul!, registry, logger, { writeSnapshotFile: false });
  consul.watch(new Set([...routes.services()].filter((service) => !Object.hasOwn(config.discovery.static, service))));
  await consul.firstRound();
  consul.stop();
}

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' },
  path: { type: 'string' },
  method: { type: 'string' },
  region: { type: 'string' },
  key: { type: 'string' },
  host: { type: 'string' },
  json: { type: 'boolean' },
  consul: { type: 'string' },
  'upstreams-only': { type: 'boolean' },
  tls: { type: 'boolean' },
  workers: { type: 'string' },
} as const;

/** The command line, or undefined (after saying why, with the usage) when parseArgs refuses it. */
function parseCommandLine(argv: string[]) {
  try {
    return parseArgs({ args: argv, allowPositionals: true, options: OPTIONS });
  } catch (err) {
    // an unknown option or a missing value: the user's mistake, not a crash with a stack
    if (!(err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS_'))) throw err;
    console.error(`${err.message.split('. ')[0]}\n${USAGE}`);
    return undefined;
  }
}

async function main(argv: string[]): Promise<number> {
  // `drill` takes options of its own (src/drill/command.ts)
  if (argv[0] === 'drill') return (await import('./drill/command.ts')).drillCommand(argv.slice(1));
  const parsed = parseCommandLine(argv);
  if (parsed === undefined) return 2;
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  const configPath = values.config ?? rest[0] ?? 'routes.yaml';
  if (values.version) {
    console.log(packageVersion());
    return 0;
  }
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  switch (command) {
    case 'validate':
      return validate(configPath);
    case 'run': {
      const workers = values.workers === undefined ? undefined : parseWorkersOption(values.workers);
      if (typeof workers === 'object') {
        console.error(`${workers.error}\n${USAGE}`);
        return 2;
      }
      return runGateway(configPath, { workers });
    }
    case 'explain':
      return explainCommand(configPath, values);
    case 'demo': {
      const { runDemo } = await import('./demo/run.ts');
      return runDemo(values.config ?? rest[0] ?? EXAMPLE_CONFIG, { consul: values.consul, upstreamsOnly: values['upstreams-only'], tls: values.tls });
    }
    case 'health':
      return probeHealth((await loadConfigFile(configPath)).gateway.admin);
    case 'schema':
      console.log(JSON.stringify(configJsonSchema(), null, 2));
      return 0;
    default:
      console.error(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

/** Runs one command; its exit code becomes the process's. */
export function runCli(argv: string[]): Promise<void> {
  return main(argv).then(
    (code) => {
      if (code !== 0) process.exitCode = code;
    },
    (err: unknown) => {
      console.error(err instanceof ConfigError ? err.format() : err);
      process.exitCode = 1;
    },
  );
}

// `node src/cli.ts …` works too; bin/zonegate.js (what `zonegate` and npm scripts run) checks the Node version
// first and adds the compile cache.
if (import.meta.main) void runCli(process.argv.slice(2));
