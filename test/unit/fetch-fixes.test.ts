import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  fixAbortedTransactionFilter,
  hideAborted,
  type FetchedMessage,
  type FetchedPartition,
} from '../../src/shared/kafka/kafkajs/fetch-fixes.js';

const ABORT = Buffer.from([0, 0, 0, 0]);
const COMMIT = Buffer.from([0, 0, 0, 1]);

/** A record of producer `pid` at `offset`; a marker when `marker` is given. */
function rec(offset: number, pid: string, marker?: Buffer, inTransaction = true): FetchedMessage {
  return {
    offset: String(offset),
    key: marker ?? Buffer.from(`k${offset}`),
    isControlRecord: marker !== undefined,
    batchContext: { producerId: pid, inTransaction },
  };
}

/** Offsets of the records kafkajs hands over after the fix: neither markers nor hidden ones. */
function visible(p: FetchedPartition): number[] {
  hideAborted(p);
  return p.messages.filter((m) => !m.isControlRecord).map((m) => Number(m.offset));
}

const kafkajsFilter = createRequire(import.meta.url)('kafkajs/src/consumer/filterAbortedMessages.js') as (a: {
  messages: FetchedMessage[];
  abortedTransactions: FetchedPartition['abortedTransactions'];
}) => FetchedMessage[];

describe('hiding the records of aborted transactions (read_committed)', () => {
  it('should hide both when the broker lists the later-started transaction first (it ended first)', () => {
    // a: 0, b: 1, b aborts (2), a aborts (3), c commits 4 (marker 5).
    const fetched = () => ({
      abortedTransactions: [
        { producerId: 'b', firstOffset: '1' },
        { producerId: 'a', firstOffset: '0' },
      ],
      messages: [
        rec(0, 'a'),
        rec(1, 'b'),
        rec(2, 'b', ABORT),
        rec(3, 'a', ABORT),
        rec(4, 'c'),
        rec(5, 'c', COMMIT),
      ],
    });
    // kafkajs 2.2.4 as it is hands a's aborted record over.
    const p = fetched();
    expect(
      kafkajsFilter(p)
        .filter((m) => !m.isControlRecord)
        .map((m) => Number(m.offset)),
    ).toEqual([0, 4]);
    expect(visible(fetched())).toEqual([4]);
  });

  it('should open every transaction already begun at the first record of the answer, not one per record', () => {
    // The fetch starts at 2, inside both aborted transactions: a began at 0, b at 1.
    const p = {
      abortedTransactions: [
        { producerId: 'a', firstOffset: '0' },
        { producerId: 'b', firstOffset: '1' },
      ],
      messages: [rec(2, 'b'), rec(3, 'a'), rec(4, 'a', ABORT), rec(5, 'b', ABORT)],
    };
    expect(visible(p)).toEqual([]);
  });

  it('should show what a producer commits after its abort, and records outside any transaction', () => {
    const p = {
      abortedTransactions: [{ producerId: 'a', firstOffset: '0' }],
      messages: [
        rec(0, 'a'),
        rec(1, 'x', undefined, false),
        rec(2, 'a', ABORT),
        rec(3, 'a'),
        rec(4, 'a', COMMIT),
      ],
    };
    expect(visible(p)).toEqual([1, 3]);
    expect(p.abortedTransactions).toEqual([]);
    // Hidden records stay in the answer (as markers do), so a consumer's position still moves past them.
    expect(p.messages.map((m) => m.offset)).toEqual(['0', '1', '2', '3', '4']);
  });

  it('should leave an answer without aborted transactions alone', () => {
    const p = { abortedTransactions: [], messages: [rec(0, 'a'), rec(1, 'a', COMMIT)] };
    expect(visible(p)).toEqual([0]);
  });

  it('should apply to the kafkajs it knows', () => {
    expect(fixAbortedTransactionFilter()).toBe(true);
    expect(fixAbortedTransactionFilter()).toBe(true);
  });
});
