import winston from 'winston';
import type { LogFields, Logger, LogLevel } from './logger.js';

export type LogFormat = 'text' | 'json';

export interface WinstonLoggerOptions {
  level: LogLevel;
  format: LogFormat;
  /** Fields on every line, e.g. `{ component: 'taskconsumer' }`. */
  base?: LogFields;
}

function renderValue(v: unknown): string {
  if (typeof v === 'string') return /[\s"=]/.test(v) ? JSON.stringify(v) : v;
  if (v instanceof Error) return JSON.stringify(v.message);
  return JSON.stringify(v) ?? String(v);
}

/** `2026-11-24T20:00:00.123Z INFO  message key=value …`: one line per record, greppable. */
const textFormat = winston.format.printf((info) => {
  const { level, message, timestamp, ...rest } = info as Record<string, unknown>;
  const fields = Object.entries(rest)
    .filter(([k, v]) => typeof k === 'string' && v !== undefined)
    .map(([k, v]) => `${k}=${renderValue(v)}`)
    .join(' ');
  const line = `${String(timestamp)} ${String(level).toUpperCase().padEnd(5)} ${String(message)}`;
  return fields ? `${line} ${fields}` : line;
});

function wrap(w: winston.Logger): Logger {
  const debug = w.isDebugEnabled();
  return {
    error: (m, f) => void w.error(m, f),
    warn: (m, f) => void w.warn(m, f),
    info: (m, f) => void w.info(m, f),
    debug: (m, f) => void w.debug(m, f),
    child: (f) => wrap(w.child(f)),
    // The level is set once, at creation (a child has its parent's): asking winston each time costs its transports.
    isDebugEnabled: () => debug,
  };
}

/** The only place winston is configured. Logs go to stderr so stdout stays for command output. */
export function createWinstonLogger(options: WinstonLoggerOptions): Logger {
  const w = winston.createLogger({
    level: options.level,
    levels: { error: 0, warn: 1, info: 2, debug: 3 },
    defaultMeta: options.base,
    format: winston.format.combine(
      winston.format.timestamp(),
      options.format === 'json' ? winston.format.json() : textFormat,
    ),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
  return wrap(w);
}
