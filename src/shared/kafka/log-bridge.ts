import { logLevel } from 'kafkajs';
import type { LogEntry, logCreator } from 'kafkajs';
import type { Logger } from '../logger.js';

/**
 * Messages kafkajs logs at ERROR that are either normal operation (rebalances, `createTopics` on an existing topic)
 * or that our own code reports in one clear line of its own (connection loss and retries, consumer crash and
 * restart). Surfaced at debug so an operator's ERROR lines mean something and a broker outage is not a wall of
 * stack traces.
 */
const EXPECTED_NOISE = [
  /The group is rebalancing, so a rejoin is needed/,
  /Connection error/,
  /Failed to connect to seed broker/,
  /Restarting the consumer/,
  /^Crash: /,
  /Connection timeout/,
  /Closed connection/,
  // Our transactions make a retried send harmless; producers are retried by our own loops, not forever inside.
  /Limiting retries for the idempotent producer/,
  /Topic with this name already exists/,
  /Topic creation errors/,
  // A fresh broker creates __consumer_offsets on the first group's request; kafkajs retries until it exists.
  /The (group )?coordinator is (loading|not available)/,
  /This is not the correct coordinator/,
  // Right after a takeover's fence the coordinator is still completing the aborted transaction; the producer
  // retries with a short backoff (see the producer in client.ts) and succeeds. A lasting failure is our own error
  // line.
  /another concurrent operation/i,
  /CONCURRENT_TRANSACTIONS/,
];

/** Bridges kafkajs's logs into ours, one line each, under `kafka.<namespace>`. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ namespace, level, log }: LogEntry) => {
      const { message, timestamp: _t, logger: _l, stack: _s, ...fields } = log;
      const line = `kafkajs ${namespace}: ${String(message)}`;
      const f = { ...fields };
      if (EXPECTED_NOISE.some((re) => re.test(String(message)) || re.test(String(f.error ?? '')))) {
        logger.debug(line, f);
      } else if (level === logLevel.ERROR || level === logLevel.NOTHING) logger.error(line, f);
      else if (level === logLevel.WARN) logger.warn(line, f);
      else if (level === logLevel.INFO) logger.debug(line, f);
      else logger.debug(line, f);
    };
}
