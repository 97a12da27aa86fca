import { describe, expect, it } from 'vitest';
import {
  KAFKAJS_VERSION_KNOWN,
  kafkajsVersion,
  useKafkajsInternals,
} from '../../src/shared/kafka/kafkajs/index.js';

describe('the kafkajs adapter’s start-up self-check', () => {
  it('should pass on the kafkajs it was written for', () => {
    expect(kafkajsVersion()).toBe(KAFKAJS_VERSION_KNOWN);
    expect(() => useKafkajsInternals()).not.toThrow();
  });

  it('should stop with one line naming the kafkajs version and every internal that moved', () => {
    const checks = [
      { what: 'consumer/filterAbortedMessages', apply: () => false },
      { what: 'network/requestQueue', apply: () => true },
      { what: 'producer/sendMessages', apply: () => false },
    ];
    expect(() => useKafkajsInternals(checks)).toThrow(
      `kafkajs ${kafkajsVersion()} is not the version taskmanager's Kafka adapter was written for ` +
        `(${KAFKAJS_VERSION_KNOWN}): consumer/filterAbortedMessages; producer/sendMessages changed. ` +
        `Install kafkajs ${KAFKAJS_VERSION_KNOWN} (npm ci), or adapt src/shared/kafka/kafkajs/ to it.`,
    );
  });
});
