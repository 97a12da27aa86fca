import { createRequire } from 'node:module';

/** How the fetches of one consumer group wait for records (see {@link waitForBatches}). */
export interface BatchWait {
  /** While records come: the broker holds a fetch until it has `minBytes`, or this long passed. */
  maxWaitMs: number;
  minBytes: number;
  /** Once a fetch came back empty: the broker answers at the first record, or after this long. */
  idleMaxWaitMs: number;
}

interface Batch {
  isEmpty(): boolean;
}

interface ConsumerGroup {
  groupId: string;
  maxWaitTime: number;
  minBytes: number;
  fetch(nodeId: number): Promise<Batch[]>;
}

/** Per consumer group id: its waits, and the brokers whose last fetch of it came back empty. */
const waits = new Map<string, BatchWait & { idle: Set<number> }>();

/**
 * Makes the fetches of consumer group `groupId` wait by its traffic: a group that collects records into batches
 * (a follower of a topic written one record per HTTP create) asks the broker to hold each fetch until it has
 * `minBytes` or `maxWaitMs` passed; with nothing written, that is one empty fetch per `maxWaitMs` (20 a second at
 * 50 ms: 3-4 % of a core of an idle scheduler, most of it the fetch's socket write). Once a fetch from a broker came
 * back empty, the next one to that broker asks for the first byte and waits up to `idleMaxWaitMs`: idle, one fetch
 * a second; the first record written is answered at once (no batching delay), and the fetch after it batches again.
 * Answers the call that stops it (when the group's consumer disconnects).
 */
export function waitForBatches(groupId: string, wait: BatchWait): () => void {
  const entry = { ...wait, idle: new Set<number>() };
  waits.set(groupId, entry);
  return () => {
    if (waits.get(groupId) === entry) waits.delete(groupId);
  };
}

/**
 * kafkajs 2.2.4 fetches with the `maxWaitTimeInMs` and `minBytes` its consumer was made with, for good
 * (consumer/consumerGroup.js `fetch`, which reads `this.maxWaitTime` and `this.minBytes`). For a group registered
 * with {@link waitForBatches}, each fetch sets both from that broker's last answer first. The fetches to different
 * brokers run side by side and read the two fields after awaiting, so with several brokers one may use the other's
 * setting: a fetch then batches less, or answers sooner, never loses or repeats a record. Applied once, only to the
 * code it was written for.
 */
export function fixFetchWaits(): boolean {
  const require = createRequire(import.meta.url);
  const Group = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroup };
  const proto = Group.prototype;
  const original = proto.fetch;
  if ((original as { fixed?: boolean }).fixed) return true;
  if (!/maxWaitTime: this\.maxWaitTime,\s*minBytes: this\.minBytes,/.test(original.toString())) return false;
  const fixed = async function fetch(this: ConsumerGroup, nodeId: number): Promise<Batch[]> {
    const wait = waits.get(this.groupId);
    if (!wait) return original.call(this, nodeId);
    const idle = wait.idle.has(nodeId);
    this.maxWaitTime = idle ? wait.idleMaxWaitMs : wait.maxWaitMs;
    this.minBytes = idle ? 1 : wait.minBytes;
    const batches = await original.call(this, nodeId);
    if (batches.every((b) => b.isEmpty())) wait.idle.add(nodeId);
    else wait.idle.delete(nodeId);
    return batches;
  };
  Object.assign(fixed, { fixed: true });
  proto.fetch = fixed;
  return true;
}
