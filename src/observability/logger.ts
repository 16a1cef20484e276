// One pino logger for the process. The destination is asynchronous (SonicBoom, sync: false) so
// logging never blocks the event loop; `flushLogger` drains it before exit. Lines are batched up to
// 4 KiB, and the periodic flush bounds how long a line waits on a quiet gateway.
import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger };

export function createLogger(options: { destination?: DestinationStream; level?: string } = {}): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: false, minLength: 4096, periodicFlush: 1000 });
  return pino(
    {
      level: options.level ?? process.env.ZONEGATE_LOG_LEVEL ?? 'info',
      base: null,
      timestamp: pino.stdTimeFunctions.isoTime,
      // Headers are never logged whole; these paths are a second line of defence for ad-hoc objects.
      redact: { paths: ['authorization', 'cookie', '["set-cookie"]', '*.authorization', '*.cookie', '*["set-cookie"]'], remove: true },
    },
    destination,
  );
}

export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => logger.flush(() => resolve()));
}
