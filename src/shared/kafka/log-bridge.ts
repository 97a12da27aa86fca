import { logLevel } from 'kafkajs';
import type { LogEntry, logCreator } from 'kafkajs';
import type { Logger } from '../logger.js';

/**
 * Messages kafkajs logs at ERROR that are normal operation: rebalances ("a rejoin is needed"), and
 * `createTopics` on an existing topic. Surfaced at debug so an operator's ERROR lines mean something.
 */
const EXPECTED_NOISE = [
  /The group is rebalancing, so a rejoin is needed/,
  /Topic with this name already exists/,
  /Topic creation errors/,
  /The coordinator is (loading|not available)/,
  /This is not the correct coordinator/,
];

/** Bridges kafkajs's logs into ours, one line each, under `kafka.<namespace>`. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, ...fields } = log;
      const line = `kafkajs ${namespace}: ${String(message)}`;
      const f = { ...fields };
      if (level === logLevel.ERROR || level === logLevel.NOTHING) {
        if (EXPECTED_NOISE.some((re) => re.test(String(message)) || re.test(String(f.error ?? '')))) {
          logger.debug(line, f);
        } else logger.error(line, f);
      } else if (level === logLevel.WARN) logger.warn(line, f);
      else if (level === logLevel.INFO) logger.debug(line, f);
      else logger.debug(line, f);
    };
}
