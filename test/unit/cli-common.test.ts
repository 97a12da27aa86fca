import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { metricsHostOption, normalizeGoFlags } from '../../src/shared/cli-common.js';
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

describe('when a program serves its metrics port', () => {
  const metricsHost = (args: string[], env: Record<string, string | undefined> = {}): unknown => {
    const saved = process.env.METRICS_HOST;
    if ('METRICS_HOST' in env) process.env.METRICS_HOST = env.METRICS_HOST;
    else delete process.env.METRICS_HOST;
    try {
      return new Command().addOption(metricsHostOption()).parse(args, { from: 'user' }).opts().metricsHost;
    } finally {
      if (saved === undefined) delete process.env.METRICS_HOST;
      else process.env.METRICS_HOST = saved;
    }
  };

  it('should listen on loopback only, unless --metrics-host or METRICS_HOST say otherwise', () => {
    expect(metricsHost([])).toBe('127.0.0.1');
    expect(metricsHost(['--metrics-host', '0.0.0.0'])).toBe('0.0.0.0');
    expect(metricsHost([], { METRICS_HOST: '10.0.0.5' })).toBe('10.0.0.5');
  });
});
