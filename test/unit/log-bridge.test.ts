import { logLevel } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { kafkaLogCreator } from '../../src/shared/kafka/log-bridge.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { Logger } from '../../src/shared/logger.js';

/** The level each kafkajs line reached our logger at, by its message. */
function bridged(entries: Array<{ level: logLevel; message: string; error?: string }>): string[] {
  const seen: string[] = [];
  const record =
    (level: string) =>
    (line: string): void => {
      seen.push(`${level} ${line}`);
    };
  const logger: Logger = {
    ...silentLogger,
    error: record('error'),
    warn: record('warn'),
    info: record('info'),
    debug: record('debug'),
  };
  const log = kafkaLogCreator(logger)(logLevel.DEBUG);
  for (const e of entries)
    log({
      namespace: 'Connection',
      level: e.level,
      label: '',
      log: { message: e.message, timestamp: '', logger: 'kafkajs', ...(e.error ? { error: e.error } : {}) },
    });
  return seen;
}

describe('when kafkajs logs a line', () => {
  it('should keep a fresh broker creating its group coordinator out of the error lines', () => {
    const seen = bridged([
      {
        level: logLevel.ERROR,
        message: 'Response GroupCoordinator(key: 10, version: 2)',
        error: 'The group coordinator is not available',
      },
      {
        level: logLevel.ERROR,
        message: 'Response JoinGroup(key: 11, version: 5)',
        error: "The coordinator is loading and hence can't process requests for this group",
      },
    ]);
    expect(seen.map((l) => l.split(' ')[0])).toEqual(['debug', 'debug']);
  });

  it('should keep the idempotent producer retry notice out of the warnings', () => {
    const seen = bridged([
      {
        level: logLevel.WARN,
        message: 'Limiting retries for the idempotent producer may invalidate EoS guarantees',
      },
    ]);
    expect(seen).toEqual([
      'debug kafkajs Connection: Limiting retries for the idempotent producer may invalidate EoS guarantees',
    ]);
  });

  it('should still report other errors and warnings at their level', () => {
    const seen = bridged([
      {
        level: logLevel.ERROR,
        message: 'Response Produce(key: 0, version: 7)',
        error: 'Not authorized to access topics',
      },
      { level: logLevel.WARN, message: 'Something unexpected' },
    ]);
    expect(seen.map((l) => l.split(' ')[0])).toEqual(['error', 'warn']);
  });
});
