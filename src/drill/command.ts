// `zonegate drill`: failure scenarios against simulated instances of a config (the example routes.yaml unless
// --config names one), each under a steady load; a table on the terminal, an HTML report, and an exit status that
// says whether every scenario met the targets.
import { writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.ts';
import { parseDuration, type Config } from '../config/schema.ts';
import { connectDemo } from './demo-fleet.ts';
import { LocalFleet, type Fleet } from './fleet.ts';
import { formatMs, formatTable, htmlReport, verdictOf, type Targets } from './report.ts';
import { runDrill, type DrillOptions } from './run.ts';
import { SCENARIOS, type Scenario } from './scenarios.ts';

export const DRILL_USAGE = `usage: zonegate drill [options]

Runs failure scenarios, each against a fresh gateway under a steady load, on simulated instances of the config
(on free loopback ports), and reports what clients saw. Exit 0 when every scenario met the targets, 1 otherwise.

  -c, --config FILE       the config (default: the example routes.yaml shipped with zonegate)
  --scenario NAMES        comma-separated (default: every scenario available here); --list names them
  --rate N                requests per second of the steady load (default 50)
  --path P, --method M    what the load sends (default: GET to the first route's path or prefix)
  --region R              the load's X-Region-ID (default: none, so the gateway's own zone)
  --before D, --during D, --after D
                          phase lengths (default 2s, 5s, 12s: the fault lasts --during)
  --max-errors N          target: at most N client-visible errors per scenario
  --max-rto D             target: clients recovered within D of the fault (e.g. 1s)
  --timeout D             the longest one request of the load may take (default 10s)
  --report FILE           the HTML report (default drill-report.html)
  --consul URL            register the simulated instances in this Consul and discover them from it
                          (enables consul-unavailable)
  --demo URL              drill the running \`zonegate demo\` through its control listener (the URL it
                          prints, http://127.0.0.1:9909): its dashboard shows the drill live; the admin
                          token, if any, is read from ZONEGATE_ADMIN_TOKEN
  --list                  the scenarios and whether they can run with this config`;

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  scenario: { type: 'string', multiple: true },
  rate: { type: 'string' },
  path: { type: 'string' },
  method: { type: 'string' },
  region: { type: 'string' },
  before: { type: 'string' },
  during: { type: 'string' },
  after: { type: 'string' },
  'max-errors': { type: 'string' },
  'max-rto': { type: 'string' },
  report: { type: 'string' },
  consul: { type: 'string' },
  demo: { type: 'string' },
  timeout: { type: 'string' },
  list: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

const EXAMPLE_CONFIG = fileURLToPath(new URL('../../routes.yaml', import.meta.url));
/** the load's rate and length are bounded: the drill measures a gateway, it does not load-test one */
const MAX_RATE = 2000;
const MAX_SCENARIO_MS = 10 * 60_000;

class UsageError extends Error {}

function durationOption(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  const parsed = parseDuration(text);
  if (parsed === undefined || parsed.fractional) throw new UsageError(`--${name} expects a duration like 500ms or 5s, got "${text}"`);
  return parsed.ms;
}

function numberOption(text: string | undefined, name: string, check: (n: number) => boolean): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (text.trim() === '' || !check(value)) throw new UsageError(`--${name}: "${text}" is not allowed here`);
  return value;
}

/** The config at `file`, if it has static instances for the drill to simulate. */
async function simulable(file: string): Promise<Config> {
  const config = await loadConfigFile(file);
  if (Object.values(config.discovery.static).every((instances) => instances.length === 0)) {
    throw new UsageError(`${file} lists no static instances: the drill simulates discovery.static (with --consul, it registers them there)`);
  }
  return config;
}

function chooseScenarios(names: readonly string[] | undefined, fleet: Fleet): Scenario[] {
  if (names === undefined) return [...SCENARIOS];
  const wanted = names.flatMap((name) => name.split(',')).map((name) => name.trim()).filter((name) => name !== '');
  return wanted.map((name) => {
    const scenario = SCENARIOS.find((candidate) => candidate.name === name);
    if (scenario === undefined) throw new UsageError(`no scenario "${name}" (zonegate drill --list names them)`);
    const unavailable = scenario.unavailable(fleet);
    if (unavailable !== undefined) throw new UsageError(`${name} cannot run here: ${unavailable}`);
    return scenario;
  });
}

export async function drillCommand(argv: string[]): Promise<number> {
  let fleet: Fleet | undefined;
  try {
    const { values } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: false });
    if (values.help) {
      console.log(DRILL_USAGE);
      return 0;
    }
    const rate = numberOption(values.rate, 'rate', (n) => n > 0 && n <= MAX_RATE) ?? 50;
    const targets: Targets = {
      maxErrors: numberOption(values['max-errors'], 'max-errors', (n) => Number.isInteger(n) && n >= 0),
      maxRtoMs: values['max-rto'] === undefined ? undefined : durationOption(values['max-rto'], 0, 'max-rto'),
    };
    if (values.demo !== undefined && (values.config !== undefined || values.consul !== undefined)) {
      throw new UsageError('--demo drills the running demo as it is: leave out --config and --consul');
    }
    fleet = values.demo !== undefined
      ? await connectDemo(values.demo, process.env.ZONEGATE_ADMIN_TOKEN ?? '')
      : await LocalFleet.start(await simulable(values.config ?? EXAMPLE_CONFIG), { consul: values.consul });
    const options: DrillOptions = {
      rate,
      beforeMs: durationOption(values.before, 2000, 'before'),
      duringMs: durationOption(values.during, 5000, 'during'),
      afterMs: durationOption(values.after, 12_000, 'after'),
      path: values.path ?? (await fleet.firstRoutePath()),
      method: values.method?.toUpperCase() ?? 'GET',
      region: values.region,
      timeoutMs: durationOption(values.timeout, 10_000, 'timeout'),
    };
    if (!options.path.startsWith('/')) throw new UsageError(`--path must start with /, got "${options.path}"`);
    if (options.beforeMs + options.duringMs + options.afterMs > MAX_SCENARIO_MS) throw new UsageError('a scenario lasts at most 10m (--before + --during + --after)');
    for (const note of fleet.notes) process.stderr.write(`note: ${note}\n`);
    if (values.list) {
      for (const scenario of SCENARIOS) {
        const unavailable = scenario.unavailable(fleet);
        console.log(`${scenario.name.padEnd(20)} ${scenario.description}${unavailable ? ` (not here: ${unavailable})` : ''}`);
      }
      return 0;
    }
    const scenarios = chooseScenarios(values.scenario, fleet);
    const each = options.beforeMs + options.duringMs + options.afterMs;
    process.stderr.write(`zonegate drill: ${scenarios.length} scenario(s), ${formatMs(each)} each, ${rate} requests/s to ${options.method} ${options.path}\n`);
    const startedAt = new Date();
    const results = await runDrill(fleet, scenarios, options, (result) => {
      const verdict = verdictOf(result, targets);
      process.stderr.write(`  ${result.name}: ${verdict.kind === 'met' ? 'met' : `${verdict.kind} (${verdict.why})`}\n`);
    });
    console.log(formatTable(results, targets));
    const reportFile = values.report ?? 'drill-report.html';
    await writeFile(reportFile, htmlReport(results, targets, { startedAt, rate, path: `${options.method} ${options.path}`, notes: fleet.notes }));
    console.log(`report: ${reportFile}`);
    return results.every((result) => verdictOf(result, targets).kind !== 'missed') ? 0 : 1;
  } catch (err) {
    const usage = err instanceof UsageError || (err instanceof TypeError && 'code' in err && String(err.code).startsWith('ERR_PARSE_ARGS_'));
    if (!usage) throw err;
    console.error(`${err.message}\n${DRILL_USAGE}`);
    return 2;
  } finally {
    await fleet?.close();
  }
}
