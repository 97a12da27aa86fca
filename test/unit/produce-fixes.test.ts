import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  isCoordinatorElsewhere as coordinatorElsewhere,
  isRejectedBeforeAppend as rejectedBeforeAppend,
} from '../../src/shared/kafka/errors.js';
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

const require = createRequire(import.meta.url);
const sendMessages = require('kafkajs/src/producer/sendMessages.js') as (
  o: object,
) => (r: object) => Promise<unknown>;
const createRetry = require('kafkajs/src/retry/index.js') as (o: object) => unknown;
const { createErrorFromCode } = require('kafkajs/src/protocol/error.js') as {
  createErrorFromCode: (code: number) => object;
};
const { KafkaJSProtocolError } = require('kafkajs/src/errors.js') as {
  KafkaJSProtocolError: new (e: object) => Error;
};
/** kafkajs's error for a Kafka error code, as a broker's answer gives it. */
const brokerError = (code: number) => new KafkaJSProtocolError(createErrorFromCode(code));

/** A produce request's successful answer. */
const written = (topicData: TopicData) => ({
  topics: topicData.map((t) => ({
    topicName: t.topic,
    partitions: t.partitions.map((p) => ({ partition: p.partition, errorCode: 0, baseOffset: '0' })),
  })),
});

/**
 * kafkajs's own send (producer/sendMessages.js, with its retry) of one record to partition 0 and one to partition 1
 * of topic `t`, in a transaction of `group/state-0`, through `brokers` (partition p led by `leaders[p]`), with
 * `add` as the coordinator's AddPartitionsToTxn. Resolves to how the send ended.
 */
async function kafkajsSend(
  brokers: Array<{ nodeId: number; produce: Produce }>,
  leaders: [number, number],
  add: Produce,
): Promise<string> {
  const sequences = new Map<string, number>();
  const noop = () => undefined;
  const send = sendMessages({
    logger: { debug: noop, error: noop, info: noop, warn: noop },
    cluster: {
      refreshMetadataIfNecessary: async () => undefined,
      refreshMetadata: async () => undefined,
      addMultipleTargetTopics: async () => undefined,
      isConnected: () => true,
      findTopicPartitionMetadata: () => leaders.map((leader, partitionId) => ({ partitionId, leader })),
      findLeaderForPartitions: (_t: string, partitions: string[]) => {
        const by: Record<number, number[]> = {};
        for (const p of partitions.map(Number)) (by[leaders[p]!] ??= []).push(p);
        return by;
      },
      findBroker: async ({ nodeId }: { nodeId: string }) => brokers.find((b) => b.nodeId === Number(nodeId)),
    },
    partitioner: ({ message }: { message: { partition: number } }) => message.partition,
    eosManager: {
      acquireBrokerLock: async () => undefined,
      releaseBrokerLock: async () => undefined,
      isTransactional: () => true,
      addPartitionsToTransaction: (topicData: TopicData) => add({ transactionalId: TX, topicData }),
      getTransactionalId: () => TX,
      getProducerId: () => 1,
      getProducerEpoch: () => 0,
      getSequence: (t: string, p: number) => sequences.get(`${t}/${p}`) ?? 0,
      updateSequence: (t: string, p: number, n: number) =>
        sequences.set(`${t}/${p}`, (sequences.get(`${t}/${p}`) ?? 0) + n),
    },
    retrier: createRetry({ retries: 3, initialRetryTime: 1, maxRetryTime: 5 }),
  });
  transactionLedger.begin(TX);
  try {
    return await send({
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
  } finally {
    await transactionLedger.end(TX);
  }
}

const TX = 'group/state-0';

/**
 * One broker leading partitions 0 and 1, whose first produce request fails for partition 1
 * (NOT_LEADER_FOR_PARTITION) after writing partition 0 (`failing: 'add'`: whose first AddPartitionsToTxn fails
 * instead, NOT_COORDINATOR). Resolves to the sequence numbers of partition 0 in every request the broker got, and
 * how the send ended.
 */
async function sendThroughKafkajs(
  wrap: (p: Produce) => Produce,
  failing: 'produce' | 'add' = 'produce',
): Promise<{ sent: number[]; outcome: string }> {
  const sent: number[] = [];
  let calls = 0;
  const broker = {
    nodeId: 1,
    produce: wrap(async ({ topicData }) => {
      const p0 = topicData[0]!.partitions.find((p) => p.partition === 0);
      if (p0) sent.push(p0.firstSequence ?? -1);
      if (failing === 'produce' && ++calls === 1) throw brokerError(6);
      return written(topicData);
    }),
  };
  let adds = 0;
  const add = wrap(async () => {
    if (failing === 'add' && ++adds === 1) throw brokerError(16);
  });
  return { outcome: await kafkajsSend([broker], [1, 1], add), sent };
}

/**
 * Partition 0 led by broker 1 and partition 1 by broker 2, whose produce answers after 20 ms; broker 1's first
 * AddPartitionsToTxn is answered NOT_COORDINATOR at once (`failing: 'produce'`: its first produce NOT_LEADER).
 * `wrap` is applied to every request. Resolves to what broker 2 wrote, and how the send ended.
 */
async function sendToTwoBrokers(
  wrap: (p: Produce) => Produce,
  failing: 'add' | 'produce' = 'add',
): Promise<{ broker2: string[]; outcome: string }> {
  const broker2: string[] = [];
  let refusedProduce = false;
  const brokers = [1, 2].map((nodeId) => ({
    nodeId,
    produce: wrap(async ({ topicData }) => {
      if (nodeId === 1 && failing === 'produce' && !refusedProduce) {
        refusedProduce = true;
        throw brokerError(6);
      }
      if (nodeId === 2) {
        await new Promise((r) => setTimeout(r, 20));
        for (const p of topicData[0]!.partitions) broker2.push(`p${p.partition} seq ${p.firstSequence}`);
      }
      return written(topicData);
    }),
  }));
  let refused = false;
  const add = wrap(async (r) => {
    if (failing === 'add' && r.topicData[0]?.partitions.some((p) => p.partition === 0) && !refused) {
      refused = true;
      throw brokerError(16);
    }
  });
  return { outcome: await kafkajsSend(brokers, [1, 2], add), broker2 };
}

describe('kafkajs retrying a transaction’s failed produce request (records written twice on a leader change)', () => {
  it('should let kafkajs retry a produce the broker refused before append, with the same sequence numbers', async () => {
    // Partition 0, which the failed request wrote, goes out again with its sequence number: the broker answers it
    // as a duplicate.
    const fixed = await sendThroughKafkajs(
      (p) => bailInTransaction(p as never, rejectedBeforeAppend) as unknown as Produce,
    );
    expect(fixed).toEqual({ sent: [0, 0], outcome: 'sent' });
    // Not while broker 2's request is in flight: kafkajs as it is sends partition 1 again with the next number.
    expect(await sendToTwoBrokers((p) => p, 'produce')).toEqual({
      broker2: ['p1 seq 0', 'p1 seq 1'],
      outcome: 'sent',
    });
    expect(
      await sendToTwoBrokers(
        (p) => bailInTransaction(transactionLedger.counting(p as never), rejectedBeforeAppend) as never,
        'produce',
      ),
    ).toEqual({ broker2: ['p1 seq 0'], outcome: 'sent' });
  });

  it('should not retry it after any other error: the send fails at once and the caller aborts the transaction', async () => {
    // kafkajs as it is: partition 0, written by the failed request, goes out again in the retry.
    expect(await sendThroughKafkajs((p) => p)).toEqual({ sent: [0, 0], outcome: 'sent' });
    const fixed = await sendThroughKafkajs((p) => bailInTransaction(p as never) as unknown as Produce);
    expect(fixed).toEqual({ sent: [0], outcome: 'TransactionalProduceError' });
  });

  it('should let kafkajs retry an AddPartitionsToTxn answered "not the coordinator" (it changed nothing), and no other failure', async () => {
    expect(await sendThroughKafkajs((p) => p, 'add')).toEqual({ sent: [0], outcome: 'sent' });
    const retried = await sendThroughKafkajs(
      (p) => bailInTransaction(p as never, coordinatorElsewhere) as unknown as Produce,
      'add',
    );
    expect(retried).toEqual({ sent: [0], outcome: 'sent' });
    const bailed = await sendThroughKafkajs(
      (p) => bailInTransaction(p as never) as unknown as Produce,
      'add',
    );
    expect(bailed).toEqual({ sent: [], outcome: 'TransactionalProduceError' });
  });

  it('should report that AddPartitionsToTxn failure only once the other brokers answered, so their records are not sent twice', async () => {
    // kafkajs as it is: the retry starts while broker 2's request is in flight and writes partition 1 again.
    expect(await sendToTwoBrokers((p) => p)).toEqual({ broker2: ['p1 seq 0', 'p1 seq 1'], outcome: 'sent' });
    expect(
      await sendToTwoBrokers(
        (p) => bailInTransaction(transactionLedger.counting(p as never), coordinatorElsewhere) as never,
      ),
    ).toEqual({ broker2: ['p1 seq 0'], outcome: 'sent' });
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
