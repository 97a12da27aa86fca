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

/**
 * `logger.child(fields)`, made only when a line is written through it (a debug line only when debug is on): a hot
 * path can hold one per unit of work (a task) without building a child logger for each.
 */
export function lazyChild(logger: Logger, fields: LogFields): Logger {
  return new LazyChild(logger, fields);
}

class LazyChild implements Logger {
  private made: Logger | undefined;

  constructor(
    private readonly base: Logger,
    private readonly fields: LogFields,
  ) {}

  private get logger(): Logger {
    return (this.made ??= this.base.child(this.fields));
  }

  error(message: string, fields?: LogFields): void {
    this.logger.error(message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.logger.warn(message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.logger.info(message, fields);
  }

  debug(message: string, fields?: LogFields): void {
    if (this.base.isDebugEnabled()) this.logger.debug(message, fields);
  }

  child(fields: LogFields): Logger {
    return this.logger.child(fields);
  }

  isDebugEnabled(): boolean {
    return this.base.isDebugEnabled();
  }
}
