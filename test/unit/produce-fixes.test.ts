import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  bailInTransaction,
  fixConcurrentProduceRetries,
  transactionLedger,
  TransactionalProduceError,
  retryConcurrent,
  settleTogether,
} from '../../src/shared/kafka/kafkajs/produce-fixes.js';

type Request = { producerId: number; producerEpoch: number; broker: string };
type Call = (r: Request) => Promise<unknown>;

/** A produce to broker `a` answered after 30 ms, one to `b` failing at once: the order their callers learn it. */
async function race(produce: Call): Promise<string[]> {
  const seen: string[] = [];
  await Promise.all([
    produce({ producerId: 1, producerEpoch: 0, broker: 'a' }).then(() => seen.push('a answered')),
    produce({ producerId: 1, producerEpoch: 0, broker: 'b' }).catch(() => seen.push('b failed')),
  ]);
  return seen;
}

const brokers: Call = async (r) => {
  if (r.broker === 'b') throw new Error('NOT_LEADER_OR_FOLLOWER');
  await new Promise((res) => setTimeout(res, 30));
  return 'ok';
};

const concurrent = () =>
  Object.assign(new Error('another concurrent operation'), { type: 'CONCURRENT_TRANSACTIONS' });

describe('kafkajs retrying a send while another request of it is in flight (duplicates on a cluster)', () => {
  it('should report a failed produce only after the same producer’s other requests settled', async () => {
    // kafkajs as it is: the failure arrives first, and its retry would send a's partitions again.
    expect(await race(brokers)).toEqual(['b failed', 'a answered']);
    expect(await race(settleTogether(brokers as never) as unknown as Call)).toEqual([
      'a answered',
      'b failed',
    ]);
  });

  it('should ask AddPartitionsToTxn again while the coordinator finishes the last transaction, and not fail', async () => {
    let calls = 0;
    const add = async () => {
      if (++calls < 4) throw concurrent();
      return 'added';
    };
    expect(await retryConcurrent(add as never, 1).call(undefined, {})).toBe('added');
    expect(calls).toBe(4);
    const other = retryConcurrent(
      (async () => {
        throw new Error('TRANSACTIONAL_ID_AUTHORIZATION_FAILED');
      }) as never,
      1,
    );
    await expect(other.call(undefined, {})).rejects.toThrow('TRANSACTIONAL_ID_AUTHORIZATION_FAILED');
  });

  it('should apply to the kafkajs it knows', () => {
    expect(fixConcurrentProduceRetries()).toBe(true);
  });
});

type TopicData = Array<{ topic: string; partitions: Array<{ partition: number; firstSequence?: number }> }>;
type Produce = (request: { transactionalId?: string; topicData: TopicData }) => Promise<unknown>;

/**
 * kafkajs's own send (producer/sendMessages.js, with its retry) over one broker leading partitions 0 and 1 of a
 * topic, whose first produce request fails for partition 1 (NOT_LEADER_FOR_PARTITION) after writing partition 0
 * (`failing: 'add'`: whose first AddPartitionsToTxn fails instead, NOT_COORDINATOR).
 * Resolves to the sequence numbers of partition 0 in every request the broker got, and how the send ended.
 */
async function sendThroughKafkajs(
  wrap: (p: Produce) => Produce,
  failing: 'produce' | 'add' = 'produce',
): Promise<{ sent: number[]; outcome: string }> {
  const require = createRequire(import.meta.url);
  const sendMessages = require('kafkajs/src/producer/sendMessages.js') as (
    o: object,
  ) => (r: object) => Promise<unknown>;
  const createRetry = require('kafkajs/src/retry/index.js') as (o: object) => unknown;
  const { KafkaJSProtocolError } = require('kafkajs/src/errors.js') as {
    KafkaJSProtocolError: new (e: object) => Error;
  };
  const sent: number[] = [];
  const sequences = new Map<string, number>();
  let calls = 0;
  const broker = {
    nodeId: 1,
    produce: wrap(async ({ topicData }) => {
      const p0 = topicData[0]!.partitions.find((p) => p.partition === 0);
      if (p0) sent.push(p0.firstSequence ?? -1);
      if (failing === 'produce' && ++calls === 1)
        throw new KafkaJSProtocolError({
          type: 'NOT_LEADER_FOR_PARTITION',
          code: 6,
          retriable: true,
          message: 'not leader',
        });
      return {
        topics: topicData.map((t) => ({
          topicName: t.topic,
          partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: '0' })),
        })),
      };
    }),
  };
  let adds = 0;
  const add = wrap((async () => {
    if (failing === 'add' && ++adds === 1)
      throw new KafkaJSProtocolError({
        type: 'NOT_COORDINATOR',
        code: 16,
        retriable: true,
        message: 'not coordinator',
      });
  }) as never);
  const noop = () => undefined;
  const send = sendMessages({
    logger: { debug: noop, error: noop, info: noop, warn: noop },
    cluster: {
      refreshMetadataIfNecessary: async () => undefined,
      refreshMetadata: async () => undefined,
      addMultipleTargetTopics: async () => undefined,
      isConnected: () => true,
      findTopicPartitionMetadata: () => [
        { partitionId: 0, leader: 1 },
        { partitionId: 1, leader: 1 },
      ],
      findLeaderForPartitions: (_t: string, partitions: string[]) => ({ 1: partitions.map(Number) }),
      findBroker: async () => broker,
    },
    partitioner: ({ message }: { message: { partition: number } }) => message.partition,
    eosManager: {
      acquireBrokerLock: async () => undefined,
      releaseBrokerLock: async () => undefined,
      isTransactional: () => true,
      // The coordinator moved (a rolling restart): the first AddPartitionsToTxn fails.
      addPartitionsToTransaction: () => add({ transactionalId: 'group/state-0', topicData: [] }),
      getTransactionalId: () => 'group/state-0',
      getProducerId: () => 1,
      getProducerEpoch: () => 0,
      getSequence: (t: string, p: number) => sequences.get(`${t}/${p}`) ?? 0,
      updateSequence: (t: string, p: number, n: number) =>
        sequences.set(`${t}/${p}`, (sequences.get(`${t}/${p}`) ?? 0) + n),
    },
    retrier: createRetry({ retries: 3, initialRetryTime: 1, maxRetryTime: 5 }),
  });
  const outcome = await send({
    acks: -1,
    topicMessages: [
      {
        topic: 't',
        messages: [
          { partition: 0, value: 'a' },
          { partition: 1, value: 'b' },
        ],
      },
    ],
  }).then(
    () => 'sent',
    (err: unknown) => (err instanceof Error ? err.name : String(err)),
  );
  return { sent, outcome };
}

describe('kafkajs retrying a transaction’s failed produce request (records written twice on a leader change)', () => {
  it('should not retry it: the send fails at once and the caller aborts the transaction', async () => {
    // kafkajs as it is: partition 0, written by the failed request, goes out again in the retry.
    expect(await sendThroughKafkajs((p) => p)).toEqual({ sent: [0, 0], outcome: 'sent' });
    const fixed = await sendThroughKafkajs((p) => bailInTransaction(p as never) as unknown as Produce);
    expect(fixed).toEqual({ sent: [0], outcome: 'TransactionalProduceError' });
  });

  it('should not retry a send whose AddPartitionsToTxn failed either (requests of the failed attempt may be in flight)', async () => {
    expect(await sendThroughKafkajs((p) => p, 'add')).toEqual({ sent: [0], outcome: 'sent' });
    const fixed = await sendThroughKafkajs((p) => bailInTransaction(p as never) as unknown as Produce, 'add');
    expect(fixed).toEqual({ sent: [], outcome: 'TransactionalProduceError' });
  });

  it('should count every record a transaction’s requests wrote, waiting for those still in flight', async () => {
    const produce = transactionLedger.counting((async () => {
      await new Promise((r) => setTimeout(r, 20));
      return 'ok';
    }) as never);
    const request = {
      transactionalId: 'g/state-1',
      producerId: 7,
      producerEpoch: 0,
      topicData: [{ partitions: [{ messages: [1, 2] }, { messages: [3] }] }],
    };
    transactionLedger.begin('g/state-1');
    void produce.call(undefined, request);
    // A request of a failed attempt, still going: it writes the same records again.
    void produce.call(undefined, request);
    expect(await transactionLedger.end('g/state-1')).toBe(6);
    // Not counted once the transaction ended.
    await produce.call(undefined, request);
    expect(await transactionLedger.end('g/state-1')).toBe(0);
  });

  it('should keep the broker’s error as the cause, so fencing and sequence errors are still recognised', async () => {
    const fenced = Object.assign(new Error('fenced'), { type: 'INVALID_PRODUCER_EPOCH' });
    const produce = bailInTransaction((async () => {
      throw fenced;
    }) as never);
    const err = await produce.call(undefined, { transactionalId: 'g/state-0' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionalProduceError);
    expect((err as TransactionalProduceError).cause).toBe(fenced);
    // Outside a transaction kafkajs keeps retrying as before (an idempotent producer's retry is deduplicated).
    await expect(produce.call(undefined, {})).rejects.toBe(fenced);
  });
});
