import { describe, expect, it } from 'vitest';
import {
  fixConcurrentProduceRetries,
  retryConcurrent,
  settleTogether,
} from '../../src/shared/kafka/produce-fixes.js';

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
