import { createRequire } from 'node:module';

/** What kafkajs 2.2.4 decodes from a Fetch response, as far as aborted transactions go. */
export interface FetchedMessage {
  offset: string;
  key?: Buffer | null;
  isControlRecord?: boolean;
  batchContext?: { producerId: string; inTransaction: boolean };
}
export interface FetchedPartition {
  abortedTransactions?: Array<{ producerId: string; firstOffset: string }> | null;
  messages: FetchedMessage[];
}
interface FetchResponse {
  responses?: Array<{ partitions?: FetchedPartition[] }>;
}
type Decode = ((raw: Buffer) => Promise<FetchResponse>) & { fixed?: boolean };

/** The key of an ABORT control record: version 0, type 0. */
const ABORT_KEY = Buffer.from([0, 0, 0, 0]);

/** Fetch versions whose answers carry aborted transactions (read_committed), up to the newest kafkajs sends. */
const FETCH_VERSIONS = [4, 5, 6, 7, 8, 9, 10, 11];

/**
 * Hides the records of aborted transactions in one partition of a Fetch answer, as the Java consumer does: the
 * aborted transactions sorted by first offset, every one whose first offset is reached opens (however many at
 * once), its ABORT marker closes it, and a transactional record of an open producer is hidden. A hidden record is
 * marked as a control record, which kafkajs already skips while keeping its offset (so positions still move past
 * it); the list is then emptied so kafkajs's own filter leaves the records alone.
 *
 * kafkajs 2.2.4's filter (consumer/filterAbortedMessages.js) opens at most one aborted transaction per record and
 * expects the list in first-offset order, but the broker lists them in the order they ended. With two producers
 * whose aborted transactions overlap (two state partitions of a scheduler around a broker kill), the records of
 * one of them were handed over as if committed: consumers ran fires whose transaction had been aborted, and that
 * fire was then published again (the duplicates of the cluster test).
 */
export function hideAborted(partition: FetchedPartition): void {
  const aborted = partition.abortedTransactions;
  if (!aborted || aborted.length === 0) return;
  const starts = aborted
    .map((a) => ({ producerId: a.producerId, first: BigInt(a.firstOffset) }))
    .sort((a, b) => (a.first < b.first ? -1 : a.first > b.first ? 1 : 0));
  const open = new Set<string>();
  let next = 0;
  for (const m of partition.messages) {
    const offset = BigInt(m.offset);
    while (next < starts.length && starts[next]!.first <= offset) open.add(starts[next++]!.producerId);
    const batch = m.batchContext;
    if (!batch) continue;
    if (m.isControlRecord) {
      if (m.key && ABORT_KEY.equals(Buffer.from(m.key))) open.delete(batch.producerId);
    } else if (batch.inTransaction && open.has(batch.producerId)) {
      m.isControlRecord = true;
    }
  }
  partition.abortedTransactions = [];
}

/** `decode` of a Fetch answer, with the records of aborted transactions hidden. */
export function hidingAborted(original: Decode): Decode {
  if (original.fixed) return original;
  const decode: Decode = async function (this: unknown, raw: Buffer) {
    const answer = await original.call(this, raw);
    for (const topic of answer.responses ?? []) for (const p of topic.partitions ?? []) hideAborted(p);
    return answer;
  };
  decode.fixed = true;
  return decode;
}

/**
 * Replaces kafkajs's filtering of aborted transactions (see {@link hideAborted}) in every Fetch version that
 * carries them. Applied once; false when kafkajs's code is not the one this was written against.
 */
export function fixAbortedTransactionFilter(): boolean {
  const require = createRequire(import.meta.url);
  const filter = require('kafkajs/src/consumer/filterAbortedMessages.js') as () => unknown;
  if (!/remainingAbortedTransactions\.shift\(\)/.test(filter.toString())) return false;
  for (const v of FETCH_VERSIONS) {
    const response = require(`kafkajs/src/protocol/requests/fetch/v${v}/response.js`) as { decode?: Decode };
    if (typeof response.decode !== 'function') return false;
    response.decode = hidingAborted(response.decode);
  }
  return true;
}
