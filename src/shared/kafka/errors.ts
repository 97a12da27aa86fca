import { errorMessage } from '../errors.js';

/**
 * What a Kafka client error means, decided in one place (as kafkajs keeps `isRebalancing` beside its errors): from
 * kafkajs's error `type` (Kafka's error code name) and, where kafkajs throws without one, its message. The rest of
 * taskmanager asks these predicates and never reads a Kafka error's type or text itself.
 */

/** The fields kafkajs errors carry: `type` is Kafka's error code name (`REBALANCE_IN_PROGRESS`). */
interface ClientError {
  type?: unknown;
  message?: unknown;
  cause?: unknown;
}

function typeOf(err: unknown): string | undefined {
  const t = (err as ClientError | null | undefined)?.type;
  return typeof t === 'string' ? t : undefined;
}

function messageOf(err: unknown): string {
  const m = (err as ClientError | null | undefined)?.message;
  return typeof m === 'string' ? m : '';
}

/** The error and what it wraps (kafkajs's retrier and our own errors keep the original as `cause`), at most ten. */
function* chain(err: unknown): Generator<unknown> {
  for (let e = err, i = 0; e !== undefined && e !== null && i < 10; i++) {
    yield e;
    const next = (e as ClientError).cause;
    if (next === e) return;
    e = next;
  }
}

/** Kafka's error code name of a client error (`NOT_LEADER_OR_FOLLOWER`), for log fields; undefined for others. */
export function kafkaErrorType(err: unknown): string | undefined {
  return typeOf(err);
}

/**
 * The group is rebalancing, or this member's id or generation is no longer the group's: take no new work, let what
 * finished be committed, and rejoin (the error goes back to the client, which rejoins on it).
 */
export function isRebalancing(err: unknown): boolean {
  const type = typeOf(err);
  return (
    type === 'REBALANCE_IN_PROGRESS' ||
    type === 'UNKNOWN_MEMBER_ID' ||
    type === 'ILLEGAL_GENERATION' ||
    /rebalanc/i.test(messageOf(err))
  );
}

/** The group coordinator does not know this member id (any more): its session ended, nothing to leave. */
export function isUnknownMember(err: unknown): boolean {
  return typeOf(err) === 'UNKNOWN_MEMBER_ID';
}

/** True when a newer producer with the same transactional id took over: this one can never commit again. */
export function isFencedError(err: unknown): boolean {
  for (const e of chain(err)) {
    const type = typeOf(e);
    if (type === 'INVALID_PRODUCER_EPOCH' || type === 'PRODUCER_FENCED') return true;
    if (/INVALID_PRODUCER_EPOCH|PRODUCER_FENCED|fenced/i.test(messageOf(e))) return true;
  }
  return false;
}

/** Errors after which a producer's sequence numbers or id are no good: only a fresh producer goes on. */
export function needsNewProducer(err: unknown): boolean {
  for (const e of chain(err)) {
    const type = typeOf(e);
    if (type === 'OUT_OF_ORDER_SEQUENCE_NUMBER' || type === 'UNKNOWN_PRODUCER_ID') return true;
  }
  return /OUT_OF_ORDER_SEQUENCE_NUMBER|out of order sequence|UNKNOWN_PRODUCER_ID/i.test(errorMessage(err));
}

/** The transaction coordinator is still finishing the previous transaction: ask again shortly. */
export function isConcurrentTransactions(err: unknown): boolean {
  return typeOf(err) === 'CONCURRENT_TRANSACTIONS';
}

/** A pause, resume or seek while the consumer has no running member (between a crash and its restart). */
export function isNotRunning(err: unknown): boolean {
  return /consumer#run must be called first/.test(errorMessage(err));
}

/** The errors of a request to a broker that is gone (killed, crashed, restarting), not of a broker's answer. */
const UNREACHABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
]);

/** The broker a request went to could not be reached. */
export function isBrokerUnreachable(err: unknown): boolean {
  return err instanceof Error && UNREACHABLE.has(err.name);
}

/**
 * A broker answered that it is not, or not yet, the coordinator (of a group or of a transactional id): the request
 * changed nothing, and the coordinator is to be looked up again. Kafka's COORDINATOR_LOAD_IN_PROGRESS (14),
 * COORDINATOR_NOT_AVAILABLE (15) and NOT_COORDINATOR (16), under kafkajs's names.
 */
export function isCoordinatorElsewhere(err: unknown): boolean {
  const type = typeOf(err);
  return (
    type === 'GROUP_LOAD_IN_PROGRESS' ||
    type === 'GROUP_COORDINATOR_NOT_AVAILABLE' ||
    type === 'NOT_COORDINATOR_FOR_GROUP'
  );
}

/**
 * The coordinator is gone or moving to another broker: unreachable, or a broker answering that it is not, or not
 * yet, the coordinator (also when kafkajs's retries gave up on that).
 */
export function isCoordinatorMoving(err: unknown): boolean {
  for (const e of chain(err)) if (isCoordinatorElsewhere(e) || isBrokerUnreachable(e)) return true;
  return false;
}

/**
 * A produce request's partition that the broker refused before appending anything: LEADER_NOT_AVAILABLE (5),
 * NOT_LEADER_OR_FOLLOWER (6, NOT_LEADER_FOR_PARTITION in kafkajs), NOT_ENOUGH_REPLICAS (19).
 */
export function isRejectedBeforeAppend(err: unknown): boolean {
  const type = typeOf(err);
  return (
    type === 'LEADER_NOT_AVAILABLE' || type === 'NOT_LEADER_FOR_PARTITION' || type === 'NOT_ENOUGH_REPLICAS'
  );
}
