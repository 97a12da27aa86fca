/** Structured fields attached to a log line. */
export type LogFields = Record<string, unknown>;

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

/** What every module logs through; winston is configured only in the CLI entry points. */
export interface Logger {
  error(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  debug(message: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
  /** Whether debug lines are written (to skip building them on hot paths). */
  isDebugEnabled(): boolean;
}

/** A logger that drops everything (library use, tests). */
export const silentLogger: Logger = {
  error: () => undefined,
  warn: () => undefined,
  info: () => undefined,
  debug: () => undefined,
  child: () => silentLogger,
  isDebugEnabled: () => false,
};

/**
 * Log level names we accept: ours plus the old Go tool's (DEBUG, INFO, NOTICE, WARNING, ERROR, CRITICAL),
 * case-insensitive. NOTICE is informational, CRITICAL is an error: both map to the nearest of our four.
 */
const LEVEL_ALIASES: Record<string, LogLevel> = {
  debug: 'debug',
  info: 'info',
  notice: 'info',
  warn: 'warn',
  warning: 'warn',
  error: 'error',
  critical: 'error',
};

export function parseLogLevel(name: string): LogLevel | undefined {
  return LEVEL_ALIASES[name.toLowerCase()];
}

export const LOG_LEVEL_NAMES = Object.keys(LEVEL_ALIASES);
