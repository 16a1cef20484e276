// zonegate run | validate | demo | schema
import { parseArgs } from 'node:util';
import { ConfigError } from './config/errors.ts';
import { loadConfigFile } from './config/load.ts';
import { configJsonSchema } from './config/schema.ts';
import { runGateway } from './run.ts';

const USAGE = `usage:
  zonegate run [--config routes.yaml]      run the gateway
  zonegate validate [routes.yaml]          check a config file; prints ok or file:line:col errors
  zonegate demo [--config routes.yaml]     simulated multi-zone upstreams + the gateway on :8080
  zonegate schema                          print the routes.yaml JSON Schema`;

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

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
  });
  const [command, ...rest] = positionals;
  const configPath = values.config ?? rest[0] ?? 'routes.yaml';
  if (values.help || command === undefined) {
    console.log(USAGE);
    return command === undefined && !values.help ? 2 : 0;
  }
  switch (command) {
    case 'validate':
      return validate(configPath);
    case 'run':
      return runGateway(configPath);
    case 'demo': {
      const { runDemo } = await import('./demo/run.ts');
      return runDemo(configPath);
    }
    case 'schema':
      console.log(JSON.stringify(configJsonSchema(), null, 2));
      return 0;
    default:
      console.error(`unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code !== 0) process.exitCode = code;
  },
  (err: unknown) => {
    console.error(err instanceof ConfigError ? err.format() : err);
    process.exitCode = 1;
  },
);
