import { createRequire } from 'node:module';
import { backoffDelayMs } from '../../backoff.js';
import { isConcurrentTransactions, isCoordinatorMoving, isRejectedBeforeAppend } from '../errors.js';

type Request = {
  producerId?: number;
  producerEpoch?: number;
  transactionalId?: string;
  topicData?: Array<{ partitions: Array<{ messages?: unknown[] }> }>;
};
type Call = ((this: unknown, request: Request) => Promise<unknown>) & { fixed?: boolean };
interface BrokerProto {
  produce: Call;
  addPartitionsToTxn: Call;
}

/** AddPartitionsToTxn answered CONCURRENT_TRANSACTIONS is asked again this often, this many ms apart at first. */
const CONCURRENT_RETRIES = 40;
const CONCURRENT_BACKOFF_MS = 10;

/**
 * kafkajs 2.2.4 sends a transaction's records as one request per broker (each preceded by AddPartitionsToTxn) and
 * awaits them with `Promise.all` (producer/sendMessages.js). When one fails it retries the send at once, while the
 * others may still be in flight; a request still in flight has no answer yet, so the retry sends its partitions
 * again with the next sequence numbers, and the broker writes them twice. On a three-broker cluster this happened
 * every few seconds: right after a commit the coordinator answers AddPartitionsToTxn with CONCURRENT_TRANSACTIONS
 * (routine, see the producer's retry in client.ts), failing one broker's request while another's produce was on
 * its way. So:
 *  - AddPartitionsToTxn retries CONCURRENT_TRANSACTIONS itself, as the Java client does, and does not fail;
 *  - a failed produce request reports its failure only once the same producer's other requests have settled, so
 *    the retry sees their answers;
 *  - a transaction's failed produce or AddPartitionsToTxn request is not retried by kafkajs (see
 *    {@link bailInTransaction}), except after an answer that says nothing was written (not the coordinator, not the
 *    leader) and once the transaction's other requests have their answers; every record a transaction's produce
 *    requests wrote is counted (see {@link transactionLedger}), so that a producer can refuse to commit a
 *    transaction that wrote records twice.
 * Applied once, only to the kafkajs whose code it matches.
 */
export function fixConcurrentProduceRetries(): boolean {
  const require = createRequire(import.meta.url);
  const sendMessages = require('kafkajs/src/producer/sendMessages.js') as () => unknown;
  if (!/await Promise\.all\(requests\)/.test(sendMessages.toString())) return false;
  const Broker = require('kafkajs/src/broker/index.js') as { prototype: BrokerProto };
  const proto = Broker.prototype;
  if (proto.produce.fixed) return true;
  proto.produce = settleTogether(
    bailInTransaction(transactionLedger.counting(proto.produce), isRejectedBeforeAppend),
  );
  proto.addPartitionsToTxn = bailInTransaction(
    transactionLedger.counting(retryConcurrent(proto.addPartitionsToTxn)),
    isCoordinatorMoving,
  );
  return true;
}

/*
 * A produce refused before append (isRejectedBeforeAppend): kafkajs fails the whole request on one such partition
 * and puts its sequence numbers back, so its retry sends the request's partitions again with the same sequence
 * numbers: what the broker had written of them is answered as a duplicate, not written again.
 */

/** `original` asked again while the coordinator is busy finishing the previous transaction. */
export function retryConcurrent(original: Call, backoffMs = CONCURRENT_BACKOFF_MS): Call {
  const call: Call = async function (this: unknown, request: Request) {
    for (let attempt = 1; ; attempt++) {
      try {
        return await original.call(this, request);
      } catch (err) {
        if (!isConcurrentTransactions(err) || attempt >= CONCURRENT_RETRIES) throw err;
        await new Promise((r) => setTimeout(r, backoffDelayMs(attempt, { baseMs: backoffMs, maxMs: 100 })));
      }
    }
  };
  call.fixed = true;
  return call;
}

/** `original`, made to report a failure only once the same producer's other requests have settled. */
export function settleTogether(original: Call): Call {
  const inFlight = new Map<string, Set<Promise<unknown>>>();
  const call: Call = async function (this: unknown, request: Request) {
    const key = `${request.transactionalId ?? ''}/${request.producerId ?? ''}/${request.producerEpoch ?? ''}`;
    const sent = original.call(this, request);
    let same = inFlight.get(key);
    if (!same) inFlight.set(key, (same = new Set()));
    same.add(sent);
    try {
      return await sent;
    } catch (err) {
      await Promise.allSettled([...same].filter((p) => p !== sent));
      // Let their callers store the answers before this failure starts the retry.
      await new Promise((r) => setImmediate(r));
      throw err;
    } finally {
      same.delete(sent);
      if (same.size === 0 && inFlight.get(key) === same) inFlight.delete(key);
    }
  };
  call.fixed = true;
  return call;
}

/**
 * A transaction's produce (or AddPartitionsToTxn) request failed: kafkajs must not retry the send while another
 * request of it is in flight, nor after an error that may have written records. Its retry maps every partition of
 * the send to its leader again and sends again every partition of the failed request, including those the broker
 * had written (one partition's error fails the whole request), while requests of the failed attempt may still be in
 * flight: one that had waited for AddPartitionsToTxn then wrote its partitions too, and its answer took the place
 * of the retry's in kafkajs's map of answers, so the answer did not show it. Around leader changes on a
 * three-broker cluster (a rolling restart, a kill -9) records then appeared twice inside one transaction that
 * committed, 25-75 per run of the cluster test (seen in a trace of every produce request: two successful requests
 * of one producer and epoch, for the same partitions with consecutive sequence numbers, one from the failed
 * attempt). Without kafkajs's retry there is nothing to write twice: this error, neither a KafkaJSProtocolError nor
 * of a type kafkajs retries, makes kafkajs give up at once (the failures it may retry safely are in
 * {@link bailInTransaction}); the caller aborts the transaction and sends it again through a fresh producer
 * (KafkaProducer.sendInTransaction), and an aborted transaction's records are never read.
 */
export class TransactionalProduceError extends Error {
  override readonly name = 'TransactionalProduceError';
  readonly retriable = false;

  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

/**
 * `original`, whose failures inside a transaction kafkajs does not retry ({@link TransactionalProduceError}), except
 * those `mayRetry` accepts, as the Java client retries them inside the transaction instead of the caller aborting it
 * and fencing again (1-2 s after a broker kill, while the coordinator aborts):
 *  - an AddPartitionsToTxn that could not reach the coordinator, or that a broker answered with "not (yet) the
 *    coordinator" (the transactional id's coordinator moved with a broker kill or restart, and the new one loads the
 *    open transaction from its log): adding the same partitions again changes nothing, and the retry looks the
 *    coordinator up again and goes on with the same transaction;
 *  - a produce request refused before append (isRejectedBeforeAppend, see above: a broker whose metadata was behind
 *    named a leader that no longer is): the retry maps the partitions to their leaders again.
 * Such a failure is reported only once every other request of the transaction has its answer, so that the retry
 * sends again only to the brokers that have none, with the sequence numbers they had (the retry started while a
 * request was in flight is what wrote records twice). What kafkajs's retry still gets wrong (a partition that moved
 * to a broker that had answered is not sent at all) is caught by the checks of KafkaProducer.sendInTransaction,
 * which then abort the transaction as before.
 */
export function bailInTransaction(original: Call, mayRetry: (err: unknown) => boolean = () => false): Call {
  const call: Call = async function (this: unknown, request: Request) {
    try {
      return await original.call(this, request);
    } catch (err) {
      if (!request.transactionalId) throw err;
      if (!mayRetry(err)) throw new TransactionalProduceError(err);
      await transactionLedger.settled(request.transactionalId);
      throw err;
    }
  };
  call.fixed = true;
  return call;
}

/** What the produce requests of one transactional producer wrote since its transaction began. */
interface Ledger {
  /** Requests of the transaction still in flight (AddPartitionsToTxn and produce). */
  inFlight: Set<Promise<unknown>>;
  /** Records written by successful produce requests, per producer id and epoch. */
  written: Map<string, number>;
}

/**
 * Counts what every transactional produce request wrote, per transactional id, so that KafkaProducer can check
 * before it commits that its transaction wrote each record once: kafkajs's own answer to a send can hide a request
 * that wrote records twice (see {@link TransactionalProduceError}).
 */
export const transactionLedger = {
  ledgers: new Map<string, Ledger>(),

  /** Starts counting for a transaction of `transactionalId` (forgets an earlier one). */
  begin(transactionalId: string): void {
    this.ledgers.set(transactionalId, { inFlight: new Set(), written: new Map() });
  },

  /**
   * Waits until no request of the transaction is in flight any more (a request whose AddPartitionsToTxn just
   * answered sends its produce request before this looks again), then resolves to the records written, by the
   * producer id and epoch that wrote most, and stops counting.
   */
  async end(transactionalId: string): Promise<number> {
    const ledger = this.ledgers.get(transactionalId);
    if (!ledger) return 0;
    await this.settled(transactionalId);
    this.ledgers.delete(transactionalId);
    return Math.max(0, ...ledger.written.values());
  },

  /** Waits until no request of the transaction is in flight any more (see {@link end}); it goes on counting. */
  async settled(transactionalId: string): Promise<void> {
    const ledger = this.ledgers.get(transactionalId);
    if (!ledger) return;
    for (;;) {
      if (ledger.inFlight.size > 0) await Promise.allSettled([...ledger.inFlight]);
      await new Promise((r) => setImmediate(r));
      if (ledger.inFlight.size === 0) break;
    }
  },

  /** `original` (a transactional request), counted in its transaction's ledger while one is open. */
  counting(original: Call): Call {
    const ledgers = this.ledgers;
    const call: Call = async function (this: unknown, request: Request) {
      const ledger = request.transactionalId ? ledgers.get(request.transactionalId) : undefined;
      const sent = original.call(this, request);
      if (!ledger) return sent;
      ledger.inFlight.add(sent);
      try {
        const answer = await sent;
        const records = (request.topicData ?? []).reduce(
          (n, t) => t.partitions.reduce((m, p) => m + (p.messages?.length ?? 0), n),
          0,
        );
        const by = `${request.producerId ?? ''}/${request.producerEpoch ?? ''}`;
        if (records > 0) ledger.written.set(by, (ledger.written.get(by) ?? 0) + records);
        return answer;
      } finally {
        ledger.inFlight.delete(sent);
      }
    };
    call.fixed = true;
    return call;
  },
};
