import type { LogFields, Logger } from '../../../src/shared/logger.js';
import { silentLogger } from '../../../src/shared/logger.js';

/**
 * A logger that keeps the lines it is given (info and above), each as its message followed by its fields
 * (` key=value`), as a program's log would show them.
 */
export function recordingLogger(lines: string[] = []): Logger & { lines: string[] } {
  const keep = (message: string, fields?: LogFields): void =>
    void lines.push(
      message +
        Object.entries(fields ?? {})
          .map(([k, v]) => ` ${k}=${String(v)}`)
          .join(''),
    );
  const logger: Logger & { lines: string[] } = {
    ...silentLogger,
    lines,
    error: keep,
    warn: keep,
    info: keep,
    child: () => logger,
  };
  return logger;
}
