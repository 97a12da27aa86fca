import { setMaxListeners } from 'node:events';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { sleep } from '../shared/clock.js';
import { linkSignals } from '../shared/abort.js';
import type { LinkedSignal } from '../shared/abort.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { OVERLAP_HEADER } from '../shared/codecs/task-message.js';
import { OVERLAP_POLICIES } from '../shared/schedule/model.js';
import type { OverlapPolicy } from '../shared/schedule/model.js';
import { isRebalancing, kafkaErrorType } from '../shared/kafka/index.js';
import type { CommitPosition, InRecord, PartitionBatch } from '../shared/kafka/index.js';
import { CommitPump } from './commit-pump.js';
import type { ConsumerMetrics } from './metrics.js';
import { SlotLease } from './semaphore.js';
import type { Semaphore } from './semaphore.js';
import type { TaskRunner } from './task-runner.js';
import { Watermark } from './watermark.js';

export interface BatchWorkerOptions {
  runner: TaskRunner;
  /** Shared by all partitions: bounds tasks running at once (`--concurrency`). */
  slots: Semaphore;
  clock: Clock;
  logger: Logger;
  /** Aborts every running task at once (the drain deadline, a second signal). */
  drain: AbortSignal;
  /** How long running tasks of a revoked partition may take before they are aborted. */
  revokeTimeoutMs: number;
  /** @default 500 */
  heartbeatEveryMs?: number;
  /**
   * Records taken from one partition and not finished, at most: a fetch of that partition waits while it has as many
   * (one slow schedule with a long queue then holds its partition back, not memory). @default 5000
   */
  maxPendingPerPartition?: number;
  metrics?: ConsumerMetrics;
}

/** The records of one schedule (one key) that run one after another: the running one first, then those waiting. */
interface Lane {
  records: InRecord[];
  head: number;
  running: boolean;
}

/** What this member has taken from one partition of its assignment. */
interface PartitionWork {
  topic: string;
  partition: number;
  /** Aborted at the revoke deadline; linked with the drain. */
  revoke: AbortController;
  linked: LinkedSignal;
  /** Lanes by key: those of `queue`, `skip` and `replace` schedules with a run running or waiting. */
  lanes: Map<string, Lane>;
  watermark: Watermark;
  /** The position last committed. */
  committed: string | undefined;
  /** The partition's high watermark at the latest fetch. */
  end: number;
  /** Work in flight: lanes, `allow` runs, skips. */
  work: Set<Promise<void>>;
  /** Wakes a fetch waiting for room (whileFull) once the partition holds fewer than its most pending records. */
  onRoom: (() => void) | undefined;
}

/** The record's overlap policy: its header, `queue` when it has none (or one this consumer does not know). */
function overlapOf(rec: InRecord): OverlapPolicy {
  const o = rec.headers[OVERLAP_HEADER] as OverlapPolicy | undefined;
  return o !== undefined && OVERLAP_POLICIES.includes(o) ? o : 'queue';
}

function taskIdOf(rec: InRecord): string {
  return rec.headers['task-id'] ?? `${rec.topic}/${rec.partition}@${rec.offset}`;
}

/**
 * Runs the task records of the member's partitions. A fetched batch is taken at once, its records sorted into lanes
 * by schedule (the record key) and the fetch moved on, so one slow task holds back only its own schedule, never the
 * rest of its partition. Lanes outlive batches; what is committed is each partition's watermark, the end of the
 * contiguous run of finished records (never a record still running or waiting). A schedule's overlap policy (the
 * record's `overlap` header) decides what a run does when an earlier run of the same schedule is still in its lane:
 * `queue` waits for it, `skip` ends SKIPPED, `replace` cancels it, `allow` runs beside it (docs/delivery.md#overlap-policies).
 *
 * Before the member rejoins its group (a rebalance) or leaves it (stop), it takes nothing new, lets the running
 * tasks finish (aborting them at the revoke deadline: they are re-delivered), commits, and forgets its lanes: the
 * partitions' next owner resumes from the watermark.
 */
export class BatchWorker {
  private readonly commits: CommitPump;
  private readonly partitions = new Map<string, PartitionWork>();
  /** taking: records are taken; rebalancing: until the group is joined again; stopping: for good. */
  private state: 'taking' | 'rebalancing' | 'stopping' = 'taking';
  /** The latest batch: commits and heartbeats of the current generation go through it. */
  private door: PartitionBatch | undefined;
  private readonly maxPending: number;

  constructor(private readonly o: BatchWorkerOptions) {
    this.maxPending = o.maxPendingPerPartition ?? 5000;
    this.commits = new CommitPump((err) => {
      if (isRebalancing(err) && this.state === 'taking') this.state = 'rebalancing';
      // A failed commit is not lost work: the positions stay and go with the next commit or the rebalance's.
      o.logger.warn(`offset commit failed: ${errorMessage(err)}`, { type: kafkaErrorType(err) });
    });
  }

  /** The group was (re)joined: partitions take records again. */
  joined(): void {
    if (this.state === 'rebalancing') this.state = 'taking';
    // Work left from before the join (a join no hook preceded) belongs to a generation that is gone.
    if (this.partitions.size > 0) {
      this.o.logger.warn(
        `${this.partitions.size} partition(s) of an earlier generation still running; aborted`,
      );
      for (const pw of this.partitions.values()) pw.revoke.abort(new Error('the group moved on'));
      this.partitions.clear();
    }
  }

  /** Records taken and not finished, across partitions. */
  get pending(): number {
    let n = 0;
    for (const pw of this.partitions.values()) n += pw.watermark.pending;
    return n;
  }

  async handle(batch: PartitionBatch): Promise<void> {
    if (this.state !== 'taking' || batch.isStale() || !batch.isRunning()) {
      // The records stay unresolved: read again after the join, by this member or the next owner. A short wait keeps
      // kafkajs from fetching them again in a tight loop until its next heartbeat learns of the rebalance.
      await sleep(this.o.clock, 100).catch(() => undefined);
      return;
    }
    this.door = batch;
    const pw = this.partitionOf(batch);
    // A partition's first fetch starts where its group stands: nothing to commit until that moves.
    if (pw.watermark.position === undefined) pw.committed = batch.records[0]?.offset;
    pw.end = Math.max(pw.end, Number(batch.highWatermark));
    for (const rec of batch.records) if (!pw.watermark.has(rec.offset)) this.take(pw, rec);
    this.moved(pw, pw.watermark.end(batch.lastOffset()));
    // The fetch moves on: what the group resumes from is the watermark, committed by hand.
    batch.resolveOffset(batch.lastOffset());
    this.reportLag(pw);
    await this.whileFull(pw, batch);
  }

  /** After every fetch, control-record-only ones included (those never reach `handle`): move past their markers. */
  batchDone(topic: string, partition: number, lastOffset: string): void {
    const pw = this.partitions.get(`${topic}/${partition}`);
    if (pw && this.state === 'taking') this.moved(pw, pw.watermark.end(lastOffset));
  }

  /**
   * Before the member joins its group again: take nothing new, let the running tasks finish (aborted at the revoke
   * deadline), commit the watermarks, forget the lanes.
   */
  async beforeJoin(): Promise<void> {
    if (this.partitions.size === 0) return;
    if (this.state === 'taking') this.state = 'rebalancing';
    this.o.logger.info(
      `group rebalancing: finishing ${this.pending} task(s) taken before the partitions move`,
    );
    await this.finishAll(this.o.revokeTimeoutMs);
  }

  /** The consumer stops: take nothing new, let the running tasks finish (the drain deadline aborts them), commit. */
  async stop(): Promise<void> {
    this.state = 'stopping';
    await this.finishAll(undefined);
  }

  private async finishAll(deadlineMs: number | undefined): Promise<void> {
    const all = [...this.partitions.values()];
    let timer: TimerHandle | undefined;
    if (deadlineMs !== undefined)
      timer = this.o.clock.setTimeout(() => {
        for (const pw of all) pw.revoke.abort(new Error('partition revoked: deadline passed'));
      }, deadlineMs);
    const settled = (): Promise<unknown> => Promise.all(all.flatMap((pw) => [...pw.work]));
    let done = false;
    const work = settled().finally(() => (done = true));
    // Heartbeats keep the membership alive meanwhile (a rebalance is answered REBALANCE_IN_PROGRESS, and the
    // coordinator waits for this member's join up to its rebalance timeout).
    while (!done) {
      await Promise.race([work, sleep(this.o.clock, this.o.heartbeatEveryMs ?? 500)]);
      if (!done) await this.door?.heartbeat().catch(() => undefined);
    }
    if (timer) this.o.clock.clearTimeout(timer);
    await this.commits.idle();
    await this.commitNow().catch((err: unknown) =>
      this.o.logger.warn(
        `offset commit failed: ${errorMessage(err)}; the unfinished tasks will be re-delivered`,
      ),
    );
    for (const pw of all) {
      pw.linked.dispose();
      this.partitions.delete(`${pw.topic}/${pw.partition}`);
    }
  }

  private partitionOf(batch: PartitionBatch): PartitionWork {
    const key = `${batch.topic}/${batch.partition}`;
    let pw = this.partitions.get(key);
    if (!pw) {
      const revoke = new AbortController();
      const linked = linkSignals([this.o.drain, revoke.signal]);
      // Every task running from the partition listens to it (as many as --concurrency), every partition to the drain.
      setMaxListeners(0, linked.signal, this.o.drain);
      pw = {
        topic: batch.topic,
        partition: batch.partition,
        revoke,
        linked,
        lanes: new Map(),
        watermark: new Watermark(),
        committed: undefined,
        end: 0,
        work: new Set(),
        onRoom: undefined,
      };
      this.partitions.set(key, pw);
    }
    return pw;
  }

  /** Sorts one record into its lane, by its schedule's overlap policy. */
  private take(pw: PartitionWork, rec: InRecord): void {
    pw.watermark.take(rec.offset);
    const overlap = overlapOf(rec);
    if (rec.key === null || overlap === 'allow') {
      this.track(pw, this.runLane(pw, undefined, { records: [rec], head: 0, running: false }));
      return;
    }
    const key = rec.key.toString('latin1');
    const lane = pw.lanes.get(key);
    if (!lane) {
      const fresh: Lane = { records: [rec], head: 0, running: false };
      pw.lanes.set(key, fresh);
      this.track(pw, this.runLane(pw, key, fresh));
      return;
    }
    const before = lane.records[lane.head] as InRecord;
    if (overlap === 'skip') {
      const why = `run ${taskIdOf(before)} of the same schedule was still ${lane.running ? 'running' : 'waiting'} (overlap skip)`;
      this.track(pw, this.skip(pw, rec, why));
      return;
    }
    if (overlap === 'replace')
      for (let i = lane.head; i < lane.records.length; i++) {
        const old = taskIdOf(lane.records[i] as InRecord);
        if (old !== taskIdOf(rec)) this.o.runner.replace(old, taskIdOf(rec));
      }
    lane.records.push(rec);
  }

  private track(pw: PartitionWork, work: Promise<void>): void {
    pw.work.add(work);
    void work.finally(() => pw.work.delete(work));
  }

  private async skip(pw: PartitionWork, rec: InRecord, why: string): Promise<void> {
    try {
      if ((await this.o.runner.skip(rec, why, pw.linked.signal)) === 'done') this.finished(pw, rec);
    } catch (err) {
      this.o.logger.error(
        `unexpected error on ${rec.topic}/${rec.partition}@${rec.offset}: ${errorMessage(err)}; left for re-delivery`,
      );
    }
  }

  /** Runs one lane's records in order, finishing each; stops at the first left for re-delivery. */
  private async runLane(pw: PartitionWork, key: string | undefined, lane: Lane): Promise<void> {
    // The lane's slot is held while a processor runs, not while its events are acknowledged (see TaskRunner).
    const slot = new SlotLease(this.o.slots);
    try {
      while (lane.head < lane.records.length) {
        const rec = lane.records[lane.head] as InRecord;
        if (!this.takes(pw)) return;
        await slot.acquire();
        if (!this.takes(pw)) return;
        lane.running = true;
        let result;
        try {
          result = await this.o.runner.run(rec, pw.linked.signal, slot);
        } finally {
          lane.running = false;
        }
        // An interrupted record stays unfinished, and so do the later records of its lane (order).
        if (result === 'interrupted') return;
        lane.head++;
        this.finished(pw, rec);
      }
    } catch (err) {
      const rec = lane.records[lane.head] as InRecord;
      this.o.logger.error(
        `unexpected error on ${rec.topic}/${rec.partition}@${rec.offset}: ${errorMessage(err)}; left for re-delivery`,
      );
    } finally {
      slot.release();
      if (key !== undefined && pw.lanes.get(key) === lane) pw.lanes.delete(key);
    }
  }

  /** Whether a lane may start its next record: not stopping nor rebalancing, and its partition not revoked. */
  private takes(pw: PartitionWork): boolean {
    return this.state === 'taking' && !pw.linked.signal.aborted;
  }

  private finished(pw: PartitionWork, rec: InRecord): void {
    this.moved(pw, pw.watermark.finish(rec.offset));
    if (pw.onRoom && pw.watermark.pending < this.maxPending) {
      pw.onRoom();
      pw.onRoom = undefined;
    }
  }

  private moved(pw: PartitionWork, position: string | undefined): void {
    if (position === undefined) return;
    this.reportLag(pw);
    this.commits.request(() => this.commitNow());
  }

  private reportLag(pw: PartitionWork): void {
    const position = pw.watermark.position;
    if (position !== undefined)
      this.o.metrics?.lag(pw.topic, pw.partition, Math.max(0, pw.end - Number(position)));
  }

  /** Commits every partition whose watermark moved since its last commit, in one request. */
  private async commitNow(): Promise<void> {
    const door = this.door;
    if (!door) return;
    const moved: Array<{ pw: PartitionWork; at: CommitPosition }> = [];
    for (const pw of this.partitions.values()) {
      const offset = pw.watermark.position;
      if (offset !== undefined && offset !== pw.committed)
        moved.push({ pw, at: { topic: pw.topic, partition: pw.partition, offset } });
    }
    if (moved.length === 0) return;
    await door.commitOffsets(moved.map((m) => m.at));
    for (const m of moved) m.pw.committed = m.at.offset;
  }

  /**
   * While the partition has as many records pending as it may hold, the fetch waits (heartbeating, since kafkajs
   * does not meanwhile); a rebalance learnt then is thrown, for kafkajs to rejoin.
   */
  private async whileFull(pw: PartitionWork, batch: PartitionBatch): Promise<void> {
    while (pw.watermark.pending >= this.maxPending && this.state === 'taking' && !pw.linked.signal.aborted) {
      let timer: TimerHandle | undefined;
      await new Promise<void>((resolve) => {
        pw.onRoom = resolve;
        timer = this.o.clock.setTimeout(resolve, this.o.heartbeatEveryMs ?? 500);
      });
      pw.onRoom = undefined;
      if (timer) this.o.clock.clearTimeout(timer);
      try {
        await batch.heartbeat();
      } catch (err) {
        if (!isRebalancing(err)) continue;
        this.state = 'rebalancing';
        throw err;
      }
    }
  }
}
