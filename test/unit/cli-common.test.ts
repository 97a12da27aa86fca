import { describe, expect, it } from 'vitest';
import { normalizeGoFlags } from '../../src/shared/cli-common.js';
import { parseLogLevel } from '../../src/shared/logger.js';

describe('command line compatibility with the old Go tool', () => {
  describe('when given single-dash long flags', () => {
    it('should rewrite them to the usual forms', () => {
      expect(
        normalizeGoFlags([
          '-brokers=localhost:9092',
          '-schedule=config/x.json',
          '-topic=taskTopic',
          '-l=DEBUG',
        ]),
      ).toEqual(['--brokers=localhost:9092', '--schedule=config/x.json', '--topic=taskTopic', '-l', 'DEBUG']);
    });

    it('should leave usual forms, values and commands alone', () => {
      expect(normalizeGoFlags(['next', '--id', '1', '-n', '3', '-b', 'h:1'])).toEqual([
        'next',
        '--id',
        '1',
        '-n',
        '3',
        '-b',
        'h:1',
      ]);
      expect(normalizeGoFlags(['-brokers', 'h:1'])).toEqual(['--brokers', 'h:1']);
    });
  });

  describe('when given the old log level names', () => {
    it.each([
      ['DEBUG', 'debug'],
      ['INFO', 'info'],
      ['NOTICE', 'info'],
      ['WARNING', 'warn'],
      ['ERROR', 'error'],
      ['CRITICAL', 'error'],
      ['warn', 'warn'],
    ])('should map %s to %s', (name, level) => expect(parseLogLevel(name)).toBe(level));

    it('should refuse an unknown one', () => expect(parseLogLevel('LOUD')).toBeUndefined());
  });
});
