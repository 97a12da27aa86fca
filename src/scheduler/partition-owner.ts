import type { Clock } from '../shared/clock.js';
import { backoffDelayMs } from '../shared/backoff.js';
import { sleep } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Origin } from '../shared/messages.js';
import { isFencedError, TransactionInDoubtError } from '../shared/kafka/index.js';
import type { KafkaClient, OutRecord, KafkaProducer } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';
import { FireEncoder } from './task-records.js';
import type { ScheduledEventsForm } from './task-records.js';
import type { DroppedInstants } from './misfire.js';
import type { TraceSpan, Tracing } from '../shared/tracing.js';

/** The longest wait between two tries to publish (see the pump). */
const PUBLISH_RETRY_MAX_MS = 500;
/** Past the third failed try in a row, one in this many is logged (every 10 s at the longest wait). */
const LOG_EVERY_NTH_FAILURE = 20;

export type OwnerState = 'starting' | 'active' | 'fenced' | 'stopped';

export interface PartitionOwnerOptions {
  kafka: KafkaClient;
  group: string;
  partition: number;
  clock: Clock;
  logger: Logger;
  scheduler: Origin & { group: string };
  /** Fires per transaction. @default 5000 */
  maxBatch?: number;
  /** How the fires' SCHEDULED events are written. @default 'batched' */
  scheduledEvents?: ScheduledEventsForm;
  onAcked?(fires: readonly Fire[], firedAtMs: number, ackedAtMs: number): void;
  /** The `missed` alert of an entry went out with a committed fire (`fire-alerts.ts`). */
  onMissedAlert?(scheduleId: string): void;
  /** A transaction failed (it is retried). */
  onPublishError?(partition: number): void;
  /** The producer was fenced by a newer owner: stop firing this partition's entries. */
  onFenced(partition: number): void;
  /**
   * Whether this instance still owns the partition as a member in good standing of its group: only then may it
   * fence again to settle a transaction in doubt (a member out of its group would fence the rightful owner).
   */
  mayRefence(): boolean;
  /**
   * Reads the partition's state records to the end (read_committed) and answers, per entry, the last instant
   * committed: what a transaction in doubt committed after all is not published again.
   */
  readCommitted(): Promise<(entryId: string) => number | undefined>;
  /** Whether a fire's task is in its topic (read_committed): how a transaction in doubt of backfilled fires is judged. */
  isPublished(fire: Fire): Promise<boolean>;
  /**
   * How many times this instance joined its group (each rebalance is a join). Unchanged since a transaction failed,
   * and fencing again allowed (`mayRefence`), no other instance can have owned the partition meanwhile.
   */
  groupJoins(): number;
  /** Spans of each fire and its publishing (docs/operations.md#traces). @default none */
  tracing?: Tracing;
}

/**
 * A fire, or a record written on its own (pause, resume, a deadline alert), in the order they were queued. A record
 * with `written` is judged by it after the partition's state was read again (a transaction in doubt, another owner
 * meanwhile): true when what it writes is committed already.
 */
type Item = { fire: Fire } | { state: OutRecord; written?: () => boolean };

interface Waiter {
  /** Resolved once every item up to this sequence number is committed. */
  seq: number;
  resolve(): void;
  reject(err: Error): void;
}

/**
 * Publishes the fires of the entries of one state partition, exactly once. Its transactional id is derived from
 * the group and the partition, so whoever owns the partition next fences it. Each transaction holds the task
 * messages, their SCHEDULED events and the new state records of the fires it carries; a read_committed reader
 * sees all of them or none. Fires that come due while a transaction is in flight go in the next one.
 */
export class PartitionOwner {
  private producer: KafkaProducer;
  private queue: Item[] = [];
  /** Sequence number of the last item queued; the first queued item is `seq - queue.length + 1`. */
  private seq = 0;
  private waiters: Waiter[] = [];
  private pumping: Promise<void> | undefined;
  private failures = 0;
  /** The queued items (from the front) of a transaction whose commit outcome is unknown; 0 when none. */
  private inDoubtItems = 0;
  /** Set once this producer fenced again: the queue is checked against the committed state before it goes on. */
  private recheck = false;
  /** The group's join count when the transaction in doubt failed. */
  private joinsAtDoubt = 0;
  /** Queued items that are committed already (by a transaction in doubt, or by another owner): not sent again. */
  private readonly committedElsewhere = new WeakSet<Item>();
  /** Of those, backfilled fires left out without knowing whether another owner published them (dropCommitted). */
  private readonly leftOut = new WeakSet<Item>();
  state: OwnerState = 'starting';
  private readonly stopSignal = new AbortController();
  private readonly encoder: FireEncoder;

  constructor(private readonly o: PartitionOwnerOptions) {
    this.producer = o.kafka.producer({ transactionalId: transactionalIdOf(o.group, o.partition) });
    this.encoder = new FireEncoder(o.group, o.partition, o.scheduler, o.tracing, o.scheduledEvents);
  }

  /** Instants of `entryId` its takeover's misfire policy dropped: alerted with the entry's next fire. */
  noteDropped(entryId: string, dropped: DroppedInstants): void {
    this.encoder.missed.note(entryId, dropped);
  }

  /** Fires and state records queued and not yet committed. */
  get queued(): number {
    return this.queue.length;
  }

  /** Whether the last transaction failed (and is being retried). */
  get failing(): boolean {
    return this.failures > 0;
  }

  /** Connects and fences any previous owner of this partition. Must finish before the partition's state is read. */
  async fence(): Promise<void> {
    await this.producer.connect();
    await this.producer.fence();
  }

  /** Starts publishing (after the state was read and missed fires computed). */
  activate(): void {
    if (this.state !== 'starting') return;
    this.state = 'active';
    this.kick();
  }

  enqueue(fires: readonly Fire[]): void {
    this.push(fires.map((fire) => ({ fire })));
  }

  /**
   * Queues fires and state records like `enqueue` and resolves once they are committed; rejects when this
   * instance stops owning the partition first (fenced or stopped). With `written`, the records are not sent again
   * after a transaction in doubt when it answers, once the partition's state was read again, that they are
   * committed (a deadline alert, whose timer's tombstone the state shows).
   */
  publish(fires: readonly Fire[], states: readonly OutRecord[] = [], written?: () => boolean): Promise<void> {
    const items: Item[] = [
      ...fires.map((fire) => ({ fire })),
      ...states.map((state) => (written ? { state, written } : { state })),
    ];
    this.push(items);
    return this.flushed().then(() => {
      if (items.some((i) => this.leftOut.has(i)))
        throw new Error(
          'backfilled fires were left out: another instance may have owned the partition meanwhile; run it again',
        );
    });
  }

  /**
   * Resolves once everything queued so far is committed (at once when nothing is queued): what was handed to this
   * owner before the call is then in Kafka. Rejects when this instance stops owning the partition first.
   */
  flushed(): Promise<void> {
    if (this.state === 'fenced' || this.state === 'stopped')
      return Promise.reject(new Error(`state partition ${this.o.partition} is no longer owned here`));
    if (this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ seq: this.seq, resolve, reject }));
  }

  private push(items: Item[]): void {
    if (this.state === 'fenced' || this.state === 'stopped') return;
    for (const item of items) this.queue.push(item);
    this.seq += items.length;
    if (this.state === 'active') this.kick();
  }

  /** Publishes what is queued (within the deadline), then disconnects. Resolves to the fires left unpublished. */
  async stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    const deadline = this.o.clock.now() + deadlineMs;
    while (
      this.state === 'active' &&
      (this.queue.length > 0 || this.pumping) &&
      this.o.clock.now() < deadline
    ) {
      await Promise.race([this.pumping, sleep(this.o.clock, 50)]);
    }
    const wasActive = this.state === 'active' || this.state === 'starting';
    if (wasActive) this.state = 'stopped';
    this.stopSignal.abort();
    await this.pumping?.catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
    this.rejectWaiters('the scheduler stopped before it was published');
    return this.queue.filter((i) => 'fire' in i).length;
  }

  private kick(): void {
    if (this.pumping) return;
    this.pumping = this.pump().finally(() => {
      this.pumping = undefined;
      // Items pushed after the pump's last look at the queue but before this ran found it still pumping: without
      // this they waited for the next push (or were left behind by a stop).
      if (this.state === 'active' && this.queue.length > 0) this.kick();
    });
  }

  private async pump(): Promise<void> {
    while (this.state === 'active' && this.queue.length > 0) {
      const batch = this.queue.slice(0, this.o.maxBatch ?? 5000);
      const fires: Fire[] = [];
      const states: OutRecord[] = [];
      for (const item of batch) {
        if (this.committedElsewhere.has(item)) continue;
        if ('fire' in item) fires.push(item.fire);
        else states.push(item.state);
      }
      const spans: TraceSpan[] | undefined = this.o.tracing?.enabled ? [] : undefined;
      try {
        if (this.producer.needsReset) {
          await this.refence();
          continue;
        }
        if (this.recheck) {
          await this.dropCommitted();
          continue;
        }
        const firedAt = this.o.clock.now();
        if (fires.length + states.length > 0)
          await this.producer.sendInTransaction([...this.encoder.records(fires, firedAt, spans), ...states]);
        if (spans) endSpans(spans, { attributes: { 'taskmanager.transaction_fires': fires.length } });
        this.queue = this.queue.slice(batch.length);
        this.settleWaiters();
        for (const id of this.encoder.missed.acked(fires)) this.o.onMissedAlert?.(id);
        this.o.onAcked?.(fires, firedAt, this.o.clock.now());
        if (this.failures > 0)
          this.o.logger.info(`partition ${this.o.partition}: publishing again`, {
            queued: this.queue.length,
          });
        this.failures = 0;
      } catch (err) {
        if (spans) endSpans(spans, { error: errorMessage(err) });
        // Which items the transaction in doubt carried: the state tells whether they committed (dropCommitted).
        if (err instanceof TransactionInDoubtError)
          this.inDoubtItems = err.mayHaveCommitted ? batch.length : 0;
        if (err instanceof TransactionInDoubtError) this.joinsAtDoubt = this.o.groupJoins();
        if (isFencedError(err)) {
          this.state = 'fenced';
          this.o.logger.warn(
            `state partition ${this.o.partition}: fenced by a newer owner; this instance stops firing its entries ` +
              `(${this.queue.length} queued fires are the new owner's to publish)`,
          );
          this.queue = [];
          this.rejectWaiters('fenced by a newer owner of its state partition');
          this.o.onFenced(this.o.partition);
          return;
        }
        this.failures++;
        this.o.onPublishError?.(this.o.partition);
        // A broker failover ends within seconds: trying again at most every 500 ms publishes the queued fires
        // within half a second of the cluster being whole again (a 2 s ceiling left them waiting up to 2 s more).
        const delay = backoffDelayMs(this.failures, { baseMs: 100, maxMs: PUBLISH_RETRY_MAX_MS });
        if (this.failures <= 3 || this.failures % LOG_EVERY_NTH_FAILURE === 0)
          this.o.logger.error(
            `state partition ${this.o.partition}: cannot publish (${errorMessage(err)}); ` +
              `${this.queue.length} fires queued, retrying in ${delay} ms`,
            { attempt: this.failures },
          );
        try {
          await sleep(this.o.clock, delay, this.stopSignal.signal);
        } catch {
          return;
        }
      }
    }
  }

  /**
   * A transaction kafkajs could not end (a broker away during its commit or a send): fence again with a fresh
   * producer, which makes the coordinator commit or abort it. Without this the producer refused every later
   * transaction and the partition's entries never fired again while the process stayed up.
   */
  private async refence(): Promise<void> {
    if (!this.o.mayRefence())
      throw new Error('not a member in good standing of the scheduler group: waiting before fencing again');
    await this.producer.reset();
    // The state says what to leave out: the transaction in doubt if it committed after all, and fires another owner
    // published meanwhile. When it was not committed and no rebalance came since (mayRefence held), neither can be,
    // and reading the state (a second or more during a broker failover) would only delay what is queued.
    this.recheck = this.inDoubtItems > 0 || this.o.groupJoins() !== this.joinsAtDoubt;
  }

  /**
   * After fencing again nobody else can commit on this partition, and its state says what is published: the
   * transaction in doubt if it committed, and any fire another instance published while this one could not reach
   * its group (it owned the partition meanwhile, then the partition came back here with this queue still full).
   * Those leave the queue unsent; only the rest goes out. Manual fires (a trigger may repeat an instant, a backfill
   * publishes instants before the last fired one) and state
   * records are judged with the transaction in doubt they were part of; records queued with `written` by it too.
   */
  private async dropCommitted(): Promise<void> {
    const inDoubt = this.queue.slice(0, this.inDoubtItems);
    const scheduled = (i: Item): i is { fire: Fire } => 'fire' in i && !i.fire.manual;
    const backfilled = (i: Item): i is { fire: Fire } => 'fire' in i && i.fire.backfill === true;
    let done: (f: Fire) => boolean = () => false;
    const judged = (i: Item): i is { state: OutRecord; written: () => boolean } =>
      'state' in i && i.written !== undefined;
    if (this.queue.some((i) => scheduled(i) || judged(i))) {
      const lastCommitted = await this.o.readCommitted();
      done = (f) => f.scheduledFor <= (lastCommitted(f.entry.id) ?? -Infinity);
    }
    // A transaction of backfilled fires only moved no state: the task topic tells whether its first one is there.
    const firstBackfilled = inDoubt.find(backfilled);
    const committed = inDoubt.some((i) => scheduled(i) || judged(i))
      ? inDoubt.some((i) => (scheduled(i) && done(i.fire)) || (judged(i) && i.written()))
      : firstBackfilled !== undefined && (await this.o.isPublished(firstBackfilled.fire));
    // Another instance may have owned the partition meanwhile, and backfilled the same instants: a backfill queued
    // here is left out, and its publish fails (run again, it publishes what is still missing).
    const mayHaveMoved = this.o.groupJoins() !== this.joinsAtDoubt;
    let elsewhere = 0;
    let leftOut = 0;
    this.queue.forEach((item, index) => {
      if (index < inDoubt.length) {
        if (committed) this.committedElsewhere.add(item);
      } else if ((scheduled(item) && done(item.fire)) || (judged(item) && item.written())) {
        this.committedElsewhere.add(item);
        elsewhere++;
      } else if (mayHaveMoved && backfilled(item)) {
        this.committedElsewhere.add(item);
        this.leftOut.add(item);
        leftOut++;
      }
    });
    // The missed alerts of fires committed already went out with them: no longer pending.
    const settled = this.queue.filter(
      (i): i is { fire: Fire } => 'fire' in i && this.committedElsewhere.has(i),
    );
    this.encoder.missed.acked(settled.map((i) => i.fire));
    this.inDoubtItems = 0;
    this.recheck = false;
    this.o.logger.warn(
      `state partition ${this.o.partition}: fenced again; a transaction in doubt was ` +
        `${committed ? 'committed' : 'not committed'} (${inDoubt.length} queued items)` +
        (elsewhere > 0 ? `, ${elsewhere} queued fires were published by another owner meanwhile` : '') +
        (leftOut > 0 ? `, ${leftOut} queued backfilled fires are left out (run the backfill again)` : '') +
        `; ${this.queue.length - (committed ? inDoubt.length : 0) - elsewhere - leftOut} go out now`,
    );
  }

  private settleWaiters(): void {
    const committed = this.seq - this.queue.length;
    const done = this.waiters.filter((w) => w.seq <= committed);
    this.waiters = this.waiters.filter((w) => w.seq > committed);
    for (const w of done) w.resolve();
  }

  private rejectWaiters(why: string): void {
    const waiting = this.waiters;
    this.waiters = [];
    for (const w of waiting) w.reject(new Error(why));
  }
}

/** One transactional id per (group, state partition): the next owner of the partition fences the previous one. */
export function transactionalIdOf(group: string, partition: number): string {
  return `${group}/state-${partition}`;
}

/** Ends the spans of a transaction's fires, as it ended. */
function endSpans(spans: readonly TraceSpan[], how: Parameters<TraceSpan['end']>[0]): void {
  for (const s of spans) s.end(how);
}
