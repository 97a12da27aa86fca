import { hostname } from 'node:os';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { backoffDelayMs } from '../shared/backoff.js';
import { sleep } from '../shared/clock.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { nextInstants } from '../shared/schedule/compiled.js';
import { compileSpec, describeSpec } from '../shared/schedule/spec.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { manualFireInstant, taskIdFor } from '../shared/codecs/task-message.js';
import {
  SCHEDULER_STATE_TOPIC,
  parseState,
  pauseStateValue,
  specHashOf,
  stateKey,
  stateRecord,
} from '../shared/codecs/scheduler-state.js';
import { membershipProblem, partitionForKey } from '../shared/kafka/index.js';
import type { GroupConsumer, InRecord, KafkaClient, PartitionBatch } from '../shared/kafka/index.js';
import { FireLoop } from './fire-loop.js';
import type { Fire } from './fire-loop.js';
import type { Registry } from 'prom-client';
import { SchedulerMetrics } from './metrics.js';
import { misfireOf, overdueOnce } from './misfire.js';
import { PartitionOwner } from './partition-owner.js';
import { TakeoverReads } from './takeover-reads.js';
import type { EntryState } from '../shared/codecs/scheduler-state.js';
import type { CommandOutcome, EntryStatus } from '../shared/codecs/scheduler-command.js';

/** Everything that makes an entry behave differently (its position in the file does not). */
function fingerprintOf(e: ScheduleEntry): string {
  const { index: _index, ...rest } = e;
  return JSON.stringify(rest);
}

export interface GroupSchedulerOptions {
  kafka: KafkaClient;
  entries: readonly ScheduleEntry[];
  /** Scheduler group: the consumer group on the state topic, the prefix of state keys and transactional ids. */
  group: string;
  clock: Clock;
  logger: Logger;
  /** @default 6000 */
  sessionTimeoutMs?: number;
  /** Where to register the scheduler's metrics; none are kept without it. */
  metricsRegistry?: Registry;
  onAcked?(fires: readonly Fire[], ackedAtMs: number): void;
}

/** After a fence, how long to wait for the rebalance that explains it before taking the partition over again. */
const REFENCED_GRACE_MS = 10_000;

/**
 * A member of a scheduler group. Entries map to partitions of `taskmanager.scheduler-state` by the producer's
 * partitioner over `<group>/<Id>`; the group's Kafka consumer group assigns those partitions to instances, and an
 * instance fires only the entries of its partitions. Taking a partition over: fence its transactional id, read
 * the partition to its end (last fired instant of each entry), fire what was missed per `Misfire`, then arm.
 */
export class GroupScheduler {
  private readonly loop: FireLoop;
  private readonly consumer: GroupConsumer;
  private readonly owners = new Map<number, PartitionOwner>();
  private readonly lastFired = new Map<string, EntryState>();
  private readonly reads = new TakeoverReads();
  private entries = new Map<string, ScheduleEntry>();
  private partitionCount = 0;
  private readonly partitionById = new Map<string, number>();
  private assigned = new Set<number>();
  private joined = false;
  /** Pending re-takes of fenced partitions (see retakeIfStillAssigned). */
  private readonly retakes = new Set<TimerHandle>();
  private transition: Promise<void> = Promise.resolve();
  private stopping: Promise<number> | undefined;
  private readonly origin;
  private readonly metrics: SchedulerMetrics | undefined;

  constructor(private readonly o: GroupSchedulerOptions) {
    this.origin = { host: hostname(), pid: process.pid, group: o.group };
    for (const e of o.entries) this.entries.set(e.id, e);
    this.metrics = o.metricsRegistry
      ? new SchedulerMetrics(o.metricsRegistry, o.group, {
          ownedPartitions: () => this.assigned.size,
          schedules: () => this.scheduleCounts(),
          queuedFires: () => [...this.owners.values()].reduce((n, w) => n + w.queued, 0),
          ready: () => this.readiness().ready,
        })
      : undefined;
    this.loop = new FireLoop({
      clock: o.clock,
      logger: o.logger,
      onFires: (fires) => this.route(fires),
      onDropped: (id) => this.metrics?.misfired(id, 'dropped'),
    });
    // Waiting up to 1 s for data costs nothing to a takeover (a partition being read has data) and keeps an idle
    // scheduler, whose partitions are all paused, from polling ten times a second.
    this.consumer = o.kafka.consumer({
      groupId: o.group,
      sessionTimeoutMs: o.sessionTimeoutMs ?? 6000,
      maxWaitTimeMs: 1000,
    });
  }

  /** The group this instance belongs to. */
  get group(): string {
    return this.o.group;
  }

  /** Partitions this instance owns now. */
  get ownedPartitions(): number[] {
    return [...this.assigned].sort((a, b) => a - b);
  }

  /**
   * Whether this instance is in its group and fires everything it was given: joined, and every assigned state
   * partition taken over (fenced, state read, armed). `reason` says what is missing when not ready.
   */
  readiness(): { ready: boolean; reason: string; group: string; assigned: number[]; active: number[] } {
    const assigned = this.ownedPartitions;
    const active = assigned.filter((p) => this.owners.get(p)?.state === 'active');
    const failing = assigned.filter((p) => this.owners.get(p)?.failing);
    const health = this.consumer.health();
    const membership = membershipProblem(
      { ...health, joined: this.joined && health.joined },
      this.o.clock.now(),
      `scheduler group ${this.o.group}`,
    );
    let reason = 'ok';
    if (this.stopping) reason = 'stopping';
    else if (membership) reason = membership;
    else if (active.length < assigned.length)
      reason = `taking over state partitions [${assigned.filter((p) => !active.includes(p)).join(',')}]`;
    else if (failing.length > 0) reason = `cannot publish fires of state partitions [${failing.join(',')}]`;
    return { ready: reason === 'ok', reason, group: this.o.group, assigned, active };
  }

  /** A one-shot entry whose instant passed unfired goes out now, and says so. */
  private fireIfOverdue(e: ScheduleEntry, lastFiredMs: number | undefined, now: number, out: Fire[]): void {
    const at = overdueOnce(e, lastFiredMs, now);
    if (at === undefined) return;
    this.o.logger.info(
      `one-shot ${e.id} was due at ${new Date(at).toISOString()} (${Math.round((now - at) / 1000)} s ago) and never ` +
        `fired: firing it now`,
      { scheduleId: e.id },
    );
    out.push({ entry: e, scheduledFor: at });
  }

  /** The active owner of an entry's state partition, when this instance is it. */
  private ownerOf(id: string): PartitionOwner | undefined {
    const p = this.partitionOf(id);
    const owner = this.owners.get(p);
    return this.assigned.has(p) && owner?.state === 'active' ? owner : undefined;
  }

  /** Whether this instance answers commands about `id` (it owns the entry's state partition). */
  answersFor(id: string): boolean {
    return this.ownerOf(id) !== undefined;
  }

  /**
   * Fires an entry now, outside its spec, with its own taskId (the instant of the command, never a whole second,
   * so never the taskId of a spec instant). Resolves once the task is committed to Kafka.
   */
  async trigger(id: string): Promise<CommandOutcome> {
    const e = this.entries.get(id);
    const owner = this.ownerOf(id);
    if (!e || !owner) return this.unknown(id);
    const at = manualFireInstant(this.o.clock.now());
    await owner.publish([{ entry: e, scheduledFor: at, manual: true }]);
    const taskId = taskIdFor(id, at);
    this.o.logger.info(`triggered ${id} by command`, { taskId });
    return { ok: true, message: `fired ${id} now as ${taskId} (topic ${e.topic})`, taskId };
  }

  /**
   * Pauses (or resumes) an entry: persisted in the state topic by its owner, so it holds across restarts and
   * failover. A paused entry fires nothing and catches nothing up; resuming arms it from now.
   */
  async setPaused(id: string, paused: boolean, by: string): Promise<CommandOutcome> {
    const e = this.entries.get(id);
    const owner = this.ownerOf(id);
    if (!e || !owner) return this.unknown(id);
    const known = this.lastFired.get(id);
    if ((known?.paused ?? false) === paused)
      return { ok: true, message: `${id} was already ${paused ? 'paused' : 'running'}; nothing changed` };
    const now = this.o.clock.now();
    // Paused from now: nothing before now is owed, nothing while paused will be caught up.
    const last = Math.max(known?.lastFiredMs ?? now, now);
    if (paused) this.loop.remove(id);
    await owner.publish(
      [],
      [stateRecord(this.o.group, id, this.partitionOf(id), pauseStateValue(e, last, paused, now, by))],
    );
    this.lastFired.set(id, { lastFiredMs: last, specHash: specHashOf(e), paused });
    if (!paused) this.loop.add(e, now);
    this.o.logger.info(`${paused ? 'paused' : 'resumed'} ${id} by command from ${by}`);
    const next = paused || !e.enabled ? undefined : compileSpec(e.spec, e.timeZone).nextAfter(now);
    return {
      ok: true,
      message:
        `${id} ${paused ? 'paused' : 'resumed'}` +
        (next === undefined ? '' : `; next fire ${new Date(next).toISOString()}`) +
        (!paused && !e.enabled ? ' (but Enabled is false in the schedule file: it stays off)' : ''),
    };
  }

  /** The entries this instance fires (or those among `ids`), as `taskscheduler status` shows them. */
  status(ids?: readonly string[], nextCount = 3): EntryStatus[] {
    const now = this.o.clock.now();
    const chosen = ids ? ids.flatMap((id) => this.entries.get(id) ?? []) : [...this.entries.values()];
    return chosen
      .filter((e) => this.answersFor(e.id))
      .map((e) => {
        const known = this.lastFired.get(e.id);
        const state = !e.enabled ? 'disabled' : known?.paused ? 'paused' : 'enabled';
        return {
          id: e.id,
          source: e.source ?? 'file',
          spec: describeSpec(e.spec),
          timeZone: e.timeZone,
          topic: e.topic,
          processor: e.processor,
          state,
          partition: this.partitionOf(e.id),
          ...(known ? { lastFiredAt: new Date(known.lastFiredMs).toISOString() } : {}),
          nextFireTimes:
            state === 'enabled'
              ? nextInstants(compileSpec(e.spec, e.timeZone), now, nextCount).map((t) =>
                  new Date(t).toISOString(),
                )
              : [],
        };
      });
  }

  private unknown(id: string): CommandOutcome {
    return this.entries.has(id)
      ? {
          ok: false,
          code: 'CONFLICT',
          message: `this instance does not own ${id} (state partition ${this.partitionOf(id)})`,
        }
      : {
          ok: false,
          code: 'NOT_FOUND',
          message: `no schedule ${JSON.stringify(id)} in group ${this.o.group} (see taskscheduler status)`,
        };
  }

  private scheduleCounts(): { armed: number; paused: number; disabled: number } {
    let paused = 0;
    let disabled = 0;
    for (const e of this.entriesOwned()) {
      if (!e.enabled) disabled++;
      else if (this.lastFired.get(e.id)?.paused) paused++;
    }
    return { armed: this.loop.size, paused, disabled };
  }

  /** The state partition owning an entry; memoized, as it is asked for on every fire. */
  partitionOf(id: string): number {
    let p = this.partitionById.get(id);
    if (p === undefined) {
      p = partitionForKey(stateKey(this.o.group, id), this.partitionCount);
      // Known only once start() read the topic's partition count.
      if (this.partitionCount > 0) this.partitionById.set(id, p);
    }
    return p;
  }

  async start(): Promise<void> {
    this.partitionCount = await this.o.kafka.partitionCount(SCHEDULER_STATE_TOPIC);
    this.consumer.onGroupJoin(({ assignment }) => {
      const next = new Set(assignment[SCHEDULER_STATE_TOPIC] ?? []);
      this.joined = true;
      // Before the assignment is applied (assignments queue up): a takeover still reading a partition this one
      // took away gives up now.
      this.reads.assigned(next);
      this.latestAssignment = next;
      // Assignments are applied in order, one at a time.
      this.transition = this.transition
        .then(() => this.reassign(next))
        .catch((err: unknown) => {
          this.o.logger.error(`applying the new assignment failed: ${errorMessage(err)}`);
        });
    });
    this.consumer.onBatchDone((_topic, partition, lastOffset) =>
      this.reads.batchDone(partition, BigInt(lastOffset)),
    );
    await this.consumer.connect();
    await this.consumer.subscribe([SCHEDULER_STATE_TOPIC], true);
    await this.consumer.run({
      partitionsConsumedConcurrently: 1,
      autoCommit: false,
      eachBatch: async (b) => this.foldState(b),
    });
    this.loop.start();
    this.o.logger.info(
      `scheduler joined group ${this.o.group} with ${this.entries.size} entries over ${this.partitionCount} state partitions`,
    );
  }

  /** Every record of the state topic: our group's keys update the last fired instants. */
  private async foldState(b: PartitionBatch): Promise<void> {
    const prefix = `${this.o.group}/`;
    for (const r of b.records) this.foldRecord(prefix, r);
    // Without this the next fetch starts where this one did: a partition longer than one fetch (1 MiB) was
    // re-read forever and its takeover never finished.
    b.resolveOffset(b.lastOffset());
  }

  private foldRecord(prefix: string, r: InRecord): void {
    const key = r.key?.toString('utf8');
    if (!key?.startsWith(prefix)) return;
    const id = key.slice(prefix.length);
    const s = parseState(r.value);
    if (!s) return;
    // The last fired instant only moves forward; pause and the spec hash are the latest record's.
    const prev = this.lastFired.get(id);
    this.lastFired.set(id, { ...s, lastFiredMs: Math.max(s.lastFiredMs, prev?.lastFiredMs ?? -Infinity) });
  }

  private async reassign(next: Set<number>): Promise<void> {
    // A partition kept whose producer was fenced meanwhile (this member was out of its group and another instance
    // took it) is taken over again: its owner here fires nothing any more.
    for (const p of next)
      if (this.assigned.has(p) && this.owners.get(p)?.state === 'fenced') {
        await this.release(p);
        this.assigned.delete(p);
      }
    const revoked = [...this.assigned].filter((p) => !next.has(p));
    const added = [...next].filter((p) => !this.assigned.has(p));
    this.assigned = next;
    for (const p of revoked) await this.release(p);
    await Promise.all(added.map((p) => this.takeOver(p)));
    this.o.logger.info(`owning state partitions [${this.ownedPartitions.join(',')}]`, {
      entries: this.entriesOwned().length,
    });
  }

  /**
   * Fenced while the partition is still assigned here. Usually a rebalance gave it to another instance and the
   * join that says so is on its way; but when this member was out of its group (a crash, a broker restart) and got
   * the partition back with no join in between, no join will come, and nobody would fire its entries: once a
   * grace period passes with no new join, take it over again.
   */
  private retakeIfStillAssigned(partition: number, fenced: PartitionOwner): void {
    const joins = this.consumer.health().joins;
    const timer = this.o.clock.setTimeout(() => {
      this.retakes.delete(timer);
      this.transition = this.transition
        .then(async () => {
          if (this.stopping || this.consumer.health().joins !== joins) return;
          // Only as a member in good standing: one out of its group would fence the partition's rightful owner.
          if (!this.ownsInGoodStanding(partition, fenced)) return;
          this.o.logger.warn(
            `state partition ${partition} is still assigned here after its producer was fenced, and no rebalance ` +
              `followed: taking it over again`,
          );
          this.owners.delete(partition);
          await fenced.stop({ deadlineMs: 0 });
          await this.takeOver(partition);
        })
        .catch((err: unknown) => {
          this.o.logger.error(`taking state partition ${partition} over again failed: ${errorMessage(err)}`);
        });
    }, REFENCED_GRACE_MS);
    this.retakes.add(timer);
  }

  /** Whether `owner` is this partition's owner here, and this instance a member of its group in good standing. */
  private ownsInGoodStanding(partition: number, owner: PartitionOwner): boolean {
    if (this.stopping || !this.assigned.has(partition) || this.owners.get(partition) !== owner) return false;
    return membershipProblem(this.consumer.health(), this.o.clock.now(), this.o.group) === undefined;
  }

  /** Reads a state partition to its end now; resolves to that end, or undefined when it was taken away meanwhile. */
  private async readStateToEnd(partition: number): Promise<bigint | undefined> {
    const end = (await this.o.kafka.endOffsets(SCHEDULER_STATE_TOPIC)).get(partition) ?? 0n;
    this.consumer.resume(SCHEDULER_STATE_TOPIC, [partition]);
    try {
      return (await this.reads.waitFor(partition, end)) === 'caught-up' ? end : undefined;
    } finally {
      // Caught up: from here on this instance is the only writer, and reading its own writes back would cost a
      // core at thousands of fires a second. The partition is read again if it is ever taken over again.
      this.consumer.pause(SCHEDULER_STATE_TOPIC, [partition]);
    }
  }

  private entriesOf(partition: number): ScheduleEntry[] {
    return [...this.entries.values()].filter((e) => this.partitionOf(e.id) === partition);
  }

  private entriesOwned(): ScheduleEntry[] {
    return [...this.entries.values()].filter((e) => this.assigned.has(this.partitionOf(e.id)));
  }

  private async release(partition: number): Promise<void> {
    for (const e of this.entriesOf(partition)) this.loop.remove(e.id);
    const owner = this.owners.get(partition);
    this.owners.delete(partition);
    // Fires already handed to it are still published: we owned them when they came due.
    await owner?.stop({ deadlineMs: 5000 });
  }

  /** The assignment of the last join, set as it arrives (before it is applied): a takeover retries while it holds. */
  private latestAssignment: Set<number> | undefined;

  /**
   * Takes a partition over, again and again while it stays assigned here: a takeover that failed (a broker killed
   * while it fenced or read the state) left the partition assigned with nobody firing its entries.
   */
  private async takeOver(partition: number): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.takeOverOnce(partition);
        return;
      } catch (err) {
        const owner = this.owners.get(partition);
        if (owner) {
          this.owners.delete(partition);
          await owner.stop({ deadlineMs: 0 }).catch(() => undefined);
        }
        if (this.stopping || !(this.latestAssignment ?? this.assigned).has(partition)) return;
        const delayMs = backoffDelayMs(attempt, { baseMs: 500, maxMs: 5000 });
        this.o.logger.warn(
          `taking state partition ${partition} over failed (${errorMessage(err)}); trying again in ${delayMs} ms`,
          { attempt },
        );
        await sleep(this.o.clock, delayMs);
      }
    }
  }

  private async takeOverOnce(partition: number): Promise<void> {
    const owner: PartitionOwner = new PartitionOwner({
      kafka: this.o.kafka,
      group: this.o.group,
      partition,
      clock: this.o.clock,
      logger: this.o.logger,
      scheduler: this.origin,
      onPublishError: (p) => this.metrics?.publishFailed(p),
      onAcked: (fires, firedAt, at) => {
        for (const f of fires) {
          if (f.manual) continue;
          const prev = this.lastFired.get(f.entry.id);
          if (!prev || prev.lastFiredMs < f.scheduledFor)
            this.lastFired.set(f.entry.id, {
              lastFiredMs: f.scheduledFor,
              specHash: specHashOf(f.entry),
              paused: prev?.paused ?? false,
            });
        }
        this.metrics?.acked(fires, firedAt, at);
        if (this.o.logger.isDebugEnabled())
          for (const f of fires) {
            this.o.logger.debug(`fired ${f.entry.id}`, {
              taskId: taskIdFor(f.entry.id, f.scheduledFor),
              ackLagMs: at - f.scheduledFor,
            });
          }
        this.o.onAcked?.(fires, at);
      },
      mayRefence: (): boolean => this.ownsInGoodStanding(partition, owner),
      readCommitted: async () => {
        if ((await this.readStateToEnd(partition)) === undefined)
          throw new Error(`state partition ${partition} was reassigned while its state was read`);
        return (id) => this.lastFired.get(id)?.lastFiredMs;
      },
      onFenced: (p) => {
        if (this.owners.get(p) !== owner) return;
        for (const e of this.entriesOf(p)) this.loop.remove(e.id);
        this.retakeIfStillAssigned(p, owner);
      },
    });
    this.owners.set(partition, owner);
    // 1. Fence: from here on no earlier owner of this partition can commit a fire.
    await owner.fence();
    // 2. Read the partition's state to the end measured now (everything any earlier owner committed).
    const end = await this.readStateToEnd(partition);
    if (end === undefined) {
      this.o.logger.info(`state partition ${partition} was reassigned during its takeover; giving it up`);
      if (this.owners.get(partition) === owner) this.owners.delete(partition);
      await owner.stop({ deadlineMs: 0 });
      return;
    }
    if (this.owners.get(partition) !== owner || !this.assigned.has(partition)) return;
    // 3. Fire what was missed while nobody owned these entries, then arm them from now.
    const now = this.o.clock.now();
    const missed: Fire[] = [];
    const differing: string[] = [];
    const mine = this.entriesOf(partition);
    for (const e of mine) {
      const known = this.lastFired.get(e.id);
      if (known && known.specHash !== specHashOf(e)) differing.push(e.id);
      // A paused entry misses nothing: it stays unarmed until resumed.
      if (known?.paused) continue;
      this.fireIfOverdue(e, known?.lastFiredMs, now, missed);
      const m = misfireOf(e, compileSpec(e.spec, e.timeZone), known?.lastFiredMs, now);
      for (const t of m.fire) missed.push({ entry: e, scheduledFor: t });
      this.metrics?.misfired(e.id, 'caught_up', m.fire.length);
      this.metrics?.misfired(e.id, 'dropped', m.missed - m.fire.length);
      this.loop.add(e, Math.max(now, known?.lastFiredMs ?? now));
    }
    if (differing.length > 0) {
      this.o.logger.warn(
        `entries ${differing.join(', ')} differ from what group ${this.o.group} last fired (another instance runs ` +
          `a different schedule file?); all instances of a group should run the same file`,
      );
    }
    const known = mine.filter((e) => this.lastFired.has(e.id));
    const latest = Math.max(...known.map((e) => this.lastFired.get(e.id)?.lastFiredMs ?? 0));
    this.o.logger.info(
      `state partition ${partition} read to offset ${end}: ${known.length} of its ${mine.length} entries fired ` +
        `before` +
        (known.length > 0 ? `, latest at ${new Date(latest).toISOString()}` : ''),
    );
    if (missed.length > 0) {
      this.o.logger.info(
        `state partition ${partition}: firing ${missed.length} missed fire time(s) per Misfire`,
      );
      owner.enqueue(missed);
    }
    owner.activate();
  }

  /**
   * Applies a new version of the schedule (hot reload): removed entries stop, added and changed ones are armed
   * if their partition is ours. A changed entry keeps its last fired instant, so no instant fires twice.
   */
  applyEntries(next: readonly ScheduleEntry[]): { added: string[]; changed: string[]; removed: string[] } {
    const nextById = new Map(next.map((e) => [e.id, e]));
    const removed = [...this.entries.keys()].filter((id) => !nextById.has(id));
    const added: string[] = [];
    const changed: string[] = [];
    for (const e of next) {
      const prev = this.entries.get(e.id);
      if (!prev) added.push(e.id);
      else if (fingerprintOf(prev) !== fingerprintOf(e)) changed.push(e.id);
    }
    for (const id of removed) {
      this.loop.remove(id);
      this.entries.delete(id);
    }
    const now = this.o.clock.now();
    for (const id of [...added, ...changed]) {
      const e = nextById.get(id) as ScheduleEntry;
      this.entries.set(id, e);
      if (
        !this.assigned.has(this.partitionOf(id)) ||
        this.owners.get(this.partitionOf(id))?.state !== 'active' ||
        this.lastFired.get(id)?.paused
      )
        continue;
      const overdue: Fire[] = [];
      this.fireIfOverdue(e, this.lastFired.get(id)?.lastFiredMs, now, overdue);
      this.owners.get(this.partitionOf(id))?.enqueue(overdue);
      // Re-adding keeps the loop's last handed-out instant for this id (even one not yet acknowledged).
      this.loop.add(e, Math.max(now, this.lastFired.get(id)?.lastFiredMs ?? now));
    }
    this.o.logger.info(
      `schedule reloaded: ${added.length} added [${added.join(',')}], ${changed.length} changed [${changed.join(',')}], ` +
        `${removed.length} removed [${removed.join(',')}]`,
    );
    return { added, changed, removed };
  }

  /** Hands each due fire to the owner of its entry's partition. */
  private route(fires: Fire[]): void {
    const byPartition = new Map<number, Fire[]>();
    for (const f of fires) {
      const p = this.partitionOf(f.entry.id);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push(f);
    }
    for (const [p, list] of byPartition) this.owners.get(p)?.enqueue(list);
  }

  /** Stops firing, publishes what is queued, leaves the group. Idempotent. Resolves to unpublished fires. */
  stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    this.stopping ??= (async () => {
      for (const t of this.retakes) this.o.clock.clearTimeout(t);
      this.loop.stop();
      const left = await Promise.all([...this.owners.values()].map((o) => o.stop({ deadlineMs })));
      this.owners.clear();
      await this.consumer.stop().catch(() => undefined);
      await this.consumer.disconnect().catch(() => undefined);
      const unsent = left.reduce((a, b) => a + b, 0);
      if (unsent > 0)
        this.o.logger.error(
          `stopped with ${unsent} fires not published within the stop deadline (broker unreachable, or too far behind)`,
        );
      else this.o.logger.info('scheduler stopped; every fire was published');
      return unsent;
    })();
    return this.stopping;
  }
}
