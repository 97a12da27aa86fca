import { createRequire } from 'node:module';

type Reducer<T> = (acc: Record<string, T[]>, message: T) => Record<string, T[]>;

/** The source of the callback kafkajs 2.2.4's groupMessagesPerPartition hands to `messages.reduce`, once read. */
let knownGrouping: string | undefined;

/**
 * The messages of one topic in a produce call (client.ts builds them). kafkajs 2.2.4 groups a topic's messages by
 * partition with `messages.reduce((result, message) => Object.assign(result, { [p]: [...current, message] }), {})`
 * (producer/groupMessagesPerPartition.js): every message copies its partition's list so far, quadratic in the
 * messages per partition. A scheduler's transaction puts up to 5,000 state records on its one state partition:
 * 12.5 million copies and 100 MB of garbage, 22 ms of CPU per transaction here. When `reduce` is called with that
 * very callback (its source text, read from kafkajs at start-up), this array asks it for each message's partition
 * alone (the callback on an empty accumulator answers `{ [p]: [message] }`), or takes the partition a message
 * carries (what the partitioner answers for it), and appends the message to that partition's list: the same lists,
 * in the same order, in linear time. Any other callback gets Array's reduce.
 */
export class PartitionedMessages<T> extends Array<T> {
  /** Groupings done the linear way, for tests. */
  static linearGroupings = 0;

  override reduce(fn: (prev: T, cur: T, i: number, array: T[]) => T): T;
  override reduce(fn: (prev: T, cur: T, i: number, array: T[]) => T, init: T): T;
  override reduce<U>(fn: (prev: U, cur: T, i: number, array: T[]) => U, init: U): U;
  override reduce(fn: (...a: never[]) => unknown, ...init: unknown[]): unknown {
    const acc = init[0];
    if (
      knownGrouping === undefined ||
      init.length !== 1 ||
      acc === null ||
      typeof acc !== 'object' ||
      Object.keys(acc).length > 0 ||
      fn.toString() !== knownGrouping
    )
      return (super.reduce as (...a: unknown[]) => unknown)(fn, ...init);
    PartitionedMessages.linearGroupings++;
    const grouping = fn as Reducer<T>;
    const out = acc as Record<string, T[]>;
    for (const message of this) {
      // A message with its partition goes to it: every partitioner kafkajs ships, and ours, answers that first.
      const placed = (message as { partition?: unknown }).partition;
      if (typeof placed === 'number' && Number.isInteger(placed) && placed >= 0) {
        (out[placed] ??= []).push(message);
        continue;
      }
      const one = grouping({}, message);
      for (const p in one) (out[p] ??= []).push(message);
    }
    return out;
  }
}

/**
 * Reads the grouping callback of kafkajs's groupMessagesPerPartition (see {@link PartitionedMessages}); false when
 * kafkajs's code is not the one this was written against.
 */
export function fixQuadraticGrouping(): boolean {
  const require = createRequire(import.meta.url);
  const group = require('kafkajs/src/producer/groupMessagesPerPartition.js') as (o: object) => unknown;
  const match = /messages\.reduce\((\(result, message\) => \{[\s\S]*?\n {2}\}), \{\}\)/.exec(
    group.toString(),
  );
  const callback = match?.[1];
  if (!callback?.includes('[...current, message]') || !callback.includes('Object.assign(result'))
    return false;
  knownGrouping = callback;
  return true;
}
