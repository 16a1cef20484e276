// Starts a real gateway on loopback from routes.yaml text, with its log lines captured.
import { Writable } from 'node:stream';
import { loadConfigText } from '../../src/config/load.ts';
import { Gateway } from '../../src/gateway.ts';
import { createLogger } from '../../src/observability/logger.ts';

export interface LogCapture {
  readonly lines: Record<string, unknown>[];
  /** resolves with the first line (already written or future) that satisfies the predicate */
  waitFor(predicate: (line: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>;
}

export function captureLog(): { stream: Writable; capture: LogCapture } {
  const lines: Record<string, unknown>[] = [];
  const waiters: { predicate: (line: Record<string, unknown>) => boolean; resolve: (line: Record<string, unknown>) => void }[] = [];
  let pending = '';
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      pending += chunk.toString();
      let newline: number;
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = JSON.parse(pending.slice(0, newline)) as Record<string, unknown>;
        pending = pending.slice(newline + 1);
        lines.push(line);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i]!.predicate(line)) waiters.splice(i, 1)[0]!.resolve(line);
        }
      }
      callback();
    },
  });
  return {
    stream,
    capture: {
      lines,
      waitFor(predicate) {
        const found = lines.find(predicate);
        if (found) return Promise.resolve(found);
        return new Promise((resolve) => waiters.push({ predicate, resolve }));
      },
    },
  };
}

export interface TestGateway {
  readonly gateway: Gateway;
  readonly url: string;
  readonly adminUrl: string;
  /** `https://127.0.0.1:port` when the config has gateway.tls */
  readonly tlsUrl: string;
  readonly log: LogCapture;
  close(): Promise<void>;
}

/** `yaml` is a full routes.yaml; listen/admin are forced onto loopback, on free ports unless `ports` names them. */
export async function startGateway(yaml: string, env: Record<string, string> = {}, ports: { listen?: number; admin?: number } = {}): Promise<TestGateway> {
  const config = loadConfigText(yaml, 'test-routes.yaml', { ...env });
  config.gateway.listen = { host: '127.0.0.1', port: ports.listen ?? 0 };
  config.gateway.admin = { host: '127.0.0.1', port: ports.admin ?? 0 };
  if (config.gateway.tls) config.gateway.tls.listen = { host: '127.0.0.1', port: 0 };
  const { stream, capture } = captureLog();
  const gateway = await Gateway.start(config, { logger: createLogger({ destination: stream, level: 'debug', accessFlushMs: 0 }) });
  return {
    gateway,
    url: `http://127.0.0.1:${gateway.address.port}`,
    adminUrl: `http://127.0.0.1:${gateway.adminAddress.port}`,
    tlsUrl: `https://127.0.0.1:${gateway.tlsAddress?.port ?? 0}`,
    log: capture,
    close: () => gateway.stop(),
  };
}
