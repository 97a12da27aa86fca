import type { Clock, TimerHandle } from '../shared/clock.js';
import { linkSignals } from '../shared/abort.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { isRebalancing, kafkaErrorType } from '../shared/kafka/index.js';
import type { InRecord, PartitionBatch } from '../shared/kafka/index.js';
import { CommitPump } from './commit-pump.js';
import { ContiguousOffsets } from './contiguous-offsets.js';
import type { ConsumerMetrics } from './metrics.js';
import { SlotLease } from './semaphore.js';
import type { Semaphore } from './semaphore.js';
import type { TaskRunner } from './task-runner.js';

export interface BatchWorkerOptions {
  runner: TaskRunner;
  /** Shared by all partitions: bounds tasks running at once (`--concurrency`). */
  slots: Semaphore;
  clock: Clock;
  logger: Logger;
  /** How long running tasks of a revoked partition may take before they are aborted. */
  revokeTimeoutMs: number;
  /** @default 500 */
  heartbeatEveryMs?: number;
  metrics?: ConsumerMetrics;
}

/** One batch as its lanes see it. */
interface LaneRun {
  batch: PartitionBatch;
  /** Aborts with the drain, or at the revoke deadline. */
  signal: AbortSignal;
  tracker: ContiguousOffsets;
  lastRecord: string | undefined;
  /** The partition's high watermark at fetch. */
  end: number;
  log: Logger;
  /** Take no new record: stopping, rebalancing, revoked, stale, or drained. */
  stopped(): boolean;
}

/** Records with the same key run in order in one lane; records without a key each get their own. */
function lanesOf(records: readonly InRecord[]): InRecord[][] {
  const lanes = new Map<string, InRecord[]>();
  for (const r of records) {
    const key = r.key === null ? `\u0000${r.offset}` : r.key.toString('latin1');
    let lane = lanes.get(key);
    if (!lane) lanes.set(key, (lane = []));
    lane.push(r);
  }
  return [...lanes.values()];
}

/**
 * Processes one fetched batch of one partition: different keys concurrently (bounded by the shared slots), the
 * same key in order, the offset resolved to the end of the contiguous run of finished records. When the consumer
 * stops or the partition is being revoked, it takes no new record, waits for the running ones (aborting them after
 * the deadline), and returns so the finished ones are committed before the partition is let go.
 */
export class BatchWorker {
  private readonly commits: CommitPump;
  /**
   * Set when any partition learns of a pending rebalance, until the group is joined again: every partition stops
   * taking new records at once, because work finished now may not be committable before the partitions move.
   */
  private rebalancing = false;

  constructor(private readonly o: BatchWorkerOptions) {
    this.commits = new CommitPump((err) => {
      if (isRebalancing(err)) this.rebalancing = true;
      // A failed commit is not lost work: the offsets stay resolved and go with the next commit or rebalance.
      o.logger.warn(`offset commit failed: ${errorMessage(err)}`, { type: kafkaErrorType(err) });
    });
  }

  /** The group was (re)joined: partitions may take records again. */
  joined(): void {
    this.rebalancing = false;
  }

  async handle(batch: PartitionBatch, drain: AbortSignal): Promise<void> {
    const records = batch.records;
    // During a rebalance, take nothing new: the records stay unresolved and are fetched again by their next owner.
    if (records.length === 0 || this.rebalancing) return;
    const tracker = new ContiguousOffsets(records.map((r) => r.offset));
    const end = Number(batch.highWatermark);
    const lastRecord = records[records.length - 1]?.offset;
    this.o.metrics?.lag(batch.topic, batch.partition, end - Number(records[0]?.offset ?? end));
    const revoke = new AbortController();
    const linked = linkSignals([drain, revoke.signal]);
    const signal = linked.signal;
    let stopTaking = false;
    let rebalance: unknown;
    let revokeTimer: TimerHandle | undefined;
    const log = this.o.logger.child({ topic: batch.topic, partition: batch.partition });

    const stopTakingNewRecords = (why: string): void => {
      if (stopTaking) return;
      stopTaking = true;
      log.debug(`partition ${batch.topic}/${batch.partition}: ${why}; finishing running tasks`);
      revokeTimer = this.o.clock.setTimeout(
        () => revoke.abort(new Error(`${why}: deadline passed`)),
        this.o.revokeTimeoutMs,
      );
    };

    let lanesDone = false;
    const run: LaneRun = {
      batch,
      signal,
      tracker,
      lastRecord,
      end,
      log,
      stopped: () => stopTaking || this.rebalancing || !batch.isRunning() || batch.isStale() || drain.aborted,
    };
    const work = Promise.all(lanesOf(records).map((lane) => this.runLane(lane, run))).finally(
      () => (lanesDone = true),
    );

    // Heartbeats keep the membership alive during long tasks and are how a pending rebalance shows up.
    const everyMs = this.o.heartbeatEveryMs ?? 500;
    while (!lanesDone) {
      await Promise.race([work, new Promise((r) => this.o.clock.setTimeout(() => r(undefined), everyMs))]);
      if (lanesDone) break;
      if (!batch.isRunning()) stopTakingNewRecords('consumer stopping');
      if (this.rebalancing) stopTakingNewRecords('group rebalancing');
      try {
        await batch.heartbeat();
      } catch (err) {
        if (isRebalancing(err)) {
          rebalance ??= err;
          this.rebalancing = true;
          stopTakingNewRecords('group rebalancing');
        } else log.debug(`heartbeat failed: ${errorMessage(err)}`);
      }
    }
    await work;
    linked.dispose();
    await this.commits.idle();
    if (revokeTimer) this.o.clock.clearTimeout(revokeTimer);
    // Rethrown after the finished offsets were resolved: kafkajs commits them, then rejoins the group.
    if (rebalance !== undefined) throw rebalance;
  }

  /** Runs one key's records in order, resolving each finished one; stops at the first left for re-delivery. */
  private async runLane(lane: InRecord[], run: LaneRun): Promise<void> {
    const { batch, tracker, log } = run;
    // The lane's slot is held while a processor runs, not while its events are acknowledged (see TaskRunner).
    const slot = new SlotLease(this.o.slots);
    for (const rec of lane) {
      if (run.stopped()) return;
      await slot.acquire();
      try {
        if (run.stopped()) return;
        const result = await this.o.runner.run(rec, run.signal, slot);
        // An interrupted record stays unresolved, and so do the later records of its key (order).
        if (result === 'interrupted') return;
        const resolved = tracker.finish(rec.offset);
        if (resolved !== undefined) {
          batch.resolveOffset(resolved);
          // Past the last record, a transactional producer's commit marker may follow: nothing to process.
          const done = resolved === run.lastRecord ? Number(batch.lastOffset()) : Number(resolved);
          this.o.metrics?.lag(batch.topic, batch.partition, run.end - done - 1);
          this.commits.request(() => batch.commitIfNecessary());
        }
      } catch (err) {
        log.error(
          `unexpected error on ${rec.topic}/${rec.partition}@${rec.offset}: ${errorMessage(err)}; left for re-delivery`,
        );
        return;
      } finally {
        slot.release();
      }
    }
  }
}
