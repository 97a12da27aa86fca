import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  isConcurrentTransactions,
  isFencedError,
  isNotRunning,
  isRebalancing,
  isUnknownMember,
  kafkaErrorType,
  needsNewProducer,
} from '../../src/shared/kafka/errors.js';
import { TransactionInDoubtError } from '../../src/shared/kafka/index.js';

// The errors kafkajs itself builds from a broker's error code: the classifier must know their shapes.
const { createErrorFromCode } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
  createErrorFromCode(code: number): Error & { type: string };
};
const { KafkaJSError } = createRequire(import.meta.url)('kafkajs') as {
  KafkaJSError: new (message: string, options?: { retriable?: boolean; cause?: unknown }) => Error;
};
const REBALANCE_IN_PROGRESS = 27;
const ILLEGAL_GENERATION = 22;
const UNKNOWN_MEMBER_ID = 25;
const NOT_LEADER_FOR_PARTITION = 6;
const OUT_OF_ORDER_SEQUENCE_NUMBER = 45;
const INVALID_PRODUCER_EPOCH = 47;
const CONCURRENT_TRANSACTIONS = 51;

describe('Kafka error classification', () => {
  describe('when the group moves under a member', () => {
    it('should call rebalance, lost generation and lost member id a rebalance', () => {
      for (const code of [REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID])
        expect(isRebalancing(createErrorFromCode(code)), String(code)).toBe(true);
      expect(isRebalancing(new KafkaJSError('The group is rebalancing, so a rejoin is needed'))).toBe(true);
    });

    it('should not call other errors a rebalance', () => {
      expect(isRebalancing(createErrorFromCode(NOT_LEADER_FOR_PARTITION))).toBe(false);
      expect(isRebalancing(new Error('connect ECONNREFUSED'))).toBe(false);
      expect(isRebalancing(undefined)).toBe(false);
    });

    it('should know a member id the coordinator forgot', () => {
      expect(isUnknownMember(createErrorFromCode(UNKNOWN_MEMBER_ID))).toBe(true);
      expect(isUnknownMember(createErrorFromCode(REBALANCE_IN_PROGRESS))).toBe(false);
    });
  });

  describe('when a producer is fenced', () => {
    it('should see it through the errors that wrap it', () => {
      const fenced = createErrorFromCode(INVALID_PRODUCER_EPOCH);
      expect(isFencedError(fenced)).toBe(true);
      expect(isFencedError(new TransactionInDoubtError(true, fenced))).toBe(true);
      expect(isFencedError(new KafkaJSError('Producer fenced by a newer instance'))).toBe(true);
      expect(isFencedError(new TransactionInDoubtError(true, new Error('ECONNRESET')))).toBe(false);
    });
  });

  describe('when a producer lost its sequence', () => {
    it('should ask for a fresh producer', () => {
      expect(needsNewProducer(createErrorFromCode(OUT_OF_ORDER_SEQUENCE_NUMBER))).toBe(true);
      expect(
        needsNewProducer(new KafkaJSError('x', { cause: createErrorFromCode(OUT_OF_ORDER_SEQUENCE_NUMBER) })),
      ).toBe(true);
      expect(needsNewProducer(createErrorFromCode(NOT_LEADER_FOR_PARTITION))).toBe(false);
    });
  });

  describe('when other conditions are asked about', () => {
    it('should recognise each by its type or kafkajs text', () => {
      expect(isConcurrentTransactions(createErrorFromCode(CONCURRENT_TRANSACTIONS))).toBe(true);
      expect(isConcurrentTransactions(createErrorFromCode(REBALANCE_IN_PROGRESS))).toBe(false);
      expect(
        isNotRunning(
          new KafkaJSError('Consumer group was not initialized, consumer#run must be called first'),
        ),
      ).toBe(true);
      expect(isNotRunning(new Error('boom'))).toBe(false);
      expect(kafkaErrorType(createErrorFromCode(NOT_LEADER_FOR_PARTITION))).toBe('NOT_LEADER_FOR_PARTITION');
      expect(kafkaErrorType(new Error('plain'))).toBeUndefined();
    });
  });
});
