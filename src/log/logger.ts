/**
 * Structured logs: JSON lines by default, pretty when stderr is a terminal (or `format: pretty`).
 * Secrets never reach the log: known secret-bearing keys are redacted wherever they appear.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const REDACT = [
  'secret', 'token', 'key', 'password', 'privateKey', 'authorization',
  '*.secret', '*.token', '*.key', '*.password', '*.privateKey', '*.authorization',
  'headers.authorization', 'req.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  format?: 'auto' | 'json' | 'pretty';
  /** Static fields on every line, e.g. { node: 'web1' }. */
  base?: Record<string, unknown>;
  /** Where JSON lines go; defaults to stderr (fd 2). */
  destination?: number | string;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && process.stderr.isTTY === true);
  const common = {
    level: opts.level ?? process.env.MULTIALL_LOG_LEVEL ?? 'info',
    base: { pid: process.pid, ...opts.base },
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  if (pretty) {
    return pino({
      ...common,
      transport: { target: 'pino-pretty', options: { destination: 2, colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } },
    });
  }
  return pino(common, pino.destination({ dest: opts.destination ?? 2, sync: true }));
}

/** A logger that drops everything (library use and tests that do not care). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
