import { hostname } from 'node:os';
import type { Clock } from '../shared/clock.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import type { Logger } from '../shared/logger.js';
import { SCHEDULER_STATE_TOPIC } from '../shared/codecs/scheduler-state.js';
import type { GroupConsumer, KafkaClient } from '../shared/kafka/index.js';
import type { Registry } from 'prom-client';
import { overdueFire } from './catch-up.js';
import { EntryCatalog } from './entry-catalog.js';
import type { EntryDiff } from './entry-catalog.js';
import { EntryControl } from './entry-control.js';
import { publishedTaskIds } from './backfill.js';
import type { BackfillRange } from '../shared/backfill.js';
import type { ControlOutcome, EntryStatus } from '../shared/codecs/scheduler-control.js';
import { EntryStates } from './entry-states.js';
import { DeadlineTimers, followEvents } from './deadlines.js';
import { parseStatusEvents } from '../shared/codecs/task-event.js';
import { FireLoop } from './fire-loop.js';
import type { Fire } from './fire-loop.js';
import { SchedulerMetrics } from './metrics.js';
import { wantsAlert } from '../shared/schedule/alerts.js';
import type { PartitionOwner } from './partition-owner.js';
import { schedulerReadiness } from './readiness.js';
import type { SchedulerReadiness } from './readiness.js';
import { StatePartitions } from './state-partitions.js';
import type { Tracing } from '../shared/tracing.js';
import type { ScheduledEventsForm } from './task-records.js';
import type { PartitionDefinitions } from './state-partitions.js';

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
  /** Entries kept per state partition (the tasks created over HTTP): loaded before a gained partition is armed. */
  definitions?: PartitionDefinitions;
  /** Spans of each fire and its publishing (docs/operations.md#traces). @default none */
  tracing?: Tracing;
  /** How the fires' SCHEDULED events are written (docs/messages-and-topics.md#scheduled-batches). @default 'batched' */
  scheduledEvents?: ScheduledEventsForm;
}

/**
 * A member of a scheduler group. Entries map to partitions of `taskmanager.scheduler-state` by the producer's
 * partitioner over `<group>/<Id>` (EntryCatalog); the group's Kafka consumer group assigns those partitions to
 * instances, and an instance fires only the entries of its partitions (StatePartitions takes them over). One
 * FireLoop hands due fires to the owner of their partition; EntryStates keeps what the state topic says.
 */
export class GroupScheduler {
  private readonly loop: FireLoop;
  private readonly consumer: GroupConsumer;
  private readonly entries: EntryCatalog;
  private readonly states: EntryStates;
  private readonly partitions: StatePartitions;
  private readonly control: EntryControl;
  private stopping: Promise<number> | undefined;
  private readonly metrics: SchedulerMetrics | undefined;
  private readonly deadlines: DeadlineTimers;

  constructor(private readonly o: GroupSchedulerOptions) {
    this.entries = new EntryCatalog(o.group, o.entries);
    const origin = { host: hostname(), pid: process.pid, group: o.group };
    this.deadlines = new DeadlineTimers({
      group: o.group,
      clock: o.clock,
      logger: o.logger,
      scheduler: origin,
      entry: (id) => this.entries.get(id),
      publish: (partition, records, written) =>
        this.partitions.activeOwner(partition)?.publish([], records, written),
      follow: (fromMs, onRecord) => followEvents(o.kafka, o.clock, fromMs, onRecord),
      parseEvents: parseStatusEvents,
      onAlerted: (id) => this.metrics?.alerted(id, 'deadline'),
    });
    this.states = new EntryStates(o.group, this.deadlines);
    this.metrics = o.metricsRegistry
      ? new SchedulerMetrics(o.metricsRegistry, o.group, {
          ownedPartitions: () => this.partitions.ownedCount,
          schedules: () => this.scheduleCounts(),
          queuedFires: () => this.partitions.queuedFires,
          ready: () => this.readiness().ready,
          apiDefinitions: () => this.apiDefinitions,
        })
      : undefined;
    this.loop = new FireLoop({
      clock: o.clock,
      logger: o.logger,
      onFires: (fires) => this.route(fires),
      onDropped: (e, d) => {
        this.metrics?.misfired(e.id, 'dropped', d.count);
        // A running owner that stalled past the window (a paused VM, a blocked event loop): alerted like a takeover's.
        if (wantsAlert(e.alerts, 'missed')) this.ownerOf(e.id)?.noteDropped(e.id, d);
      },
    });
    // Waiting up to 1 s for data costs nothing to a takeover (a partition being read has data) and keeps an idle
    // scheduler, whose partitions are all paused, from polling ten times a second.
    const sessionTimeoutMs = o.sessionTimeoutMs ?? 6000;
    this.consumer = o.kafka.consumer({
      groupId: o.group,
      sessionTimeoutMs,
      maxWaitTimeMs: 1000,
      clock: o.clock,
    });
    this.partitions = new StatePartitions({
      kafka: o.kafka,
      consumer: this.consumer,
      group: o.group,
      clock: o.clock,
      logger: o.logger,
      origin,
      entries: this.entries,
      deadlines: this.deadlines,
      states: this.states,
      loop: this.loop,
      metrics: this.metrics,
      sessionTimeoutMs,
      ...(o.definitions ? { definitions: o.definitions } : {}),
      ...(o.onAcked ? { onAcked: o.onAcked } : {}),
      ...(o.tracing ? { tracing: o.tracing } : {}),
      ...(o.scheduledEvents ? { scheduledEvents: o.scheduledEvents } : {}),
    });
    this.control = new EntryControl({
      group: o.group,
      clock: o.clock,
      logger: o.logger,
      entries: this.entries,
      states: this.states,
      loop: this.loop,
      ownerOf: (id) => this.ownerOf(id),
      publishedTaskIds: (e) => publishedTaskIds(o.kafka, e),
    });
  }

  /** The group this instance belongs to. */
  get group(): string {
    return this.o.group;
  }

  /** API task definitions held (those of the owned state partitions). */
  get apiDefinitions(): number {
    return this.o.definitions?.size ?? 0;
  }

  /** Partitions this instance owns now. */
  get ownedPartitions(): number[] {
    return this.partitions.ownedPartitions;
  }

  /**
   * Whether this instance is in its group and fires everything it was given: joined, and every assigned state
   * partition taken over (fenced, state read, armed). `reason` says what is missing when not ready.
   */
  readiness(): SchedulerReadiness {
    const assigned = this.ownedPartitions;
    return schedulerReadiness({
      group: this.o.group,
      stopping: this.stopping !== undefined,
      joined: this.partitions.joined,
      health: this.consumer.health(),
      nowMs: this.o.clock.now(),
      assigned,
      active: assigned.filter((p) => this.partitions.isActive(p)),
      failing: assigned.filter((p) => this.partitions.isFailing(p)),
    });
  }

  /** The active owner of an entry's state partition, when this instance is it. */
  private ownerOf(id: string): PartitionOwner | undefined {
    return this.partitions.activeOwner(this.partitionOf(id));
  }

  /** Whether this instance answers commands about `id` (it owns the entry's state partition). */
  answersFor(id: string): boolean {
    return this.control.answersFor(id);
  }

  /** See {@link EntryControl.trigger}. */
  trigger(id: string): Promise<ControlOutcome> {
    return this.control.trigger(id);
  }

  /** See {@link EntryControl.setPaused}. */
  setPaused(id: string, paused: boolean, by: string): Promise<ControlOutcome> {
    return this.control.setPaused(id, paused, by);
  }

  /** See {@link EntryControl.backfill}. */
  backfill(id: string, range: BackfillRange, by: string): Promise<ControlOutcome> {
    return this.control.backfill(id, range, by);
  }

  /** The entries this instance fires (or those among `ids`), as `taskscheduler status` shows them. */
  status(ids?: readonly string[], nextCount = 3): EntryStatus[] {
    return this.control.status(ids, nextCount);
  }

  private scheduleCounts(): { armed: number; paused: number; disabled: number } {
    let paused = 0;
    let disabled = 0;
    const owned = new Set(this.partitions.ownedPartitions);
    // One pass without a copy; only a disabled or paused entry is hashed to its partition (a scrape of a million
    // armed entries hashes none).
    for (const e of this.entries.values()) {
      if (e.enabled && !this.states.isPaused(e.id)) continue;
      if (!owned.has(this.partitionOf(e.id))) continue;
      if (!e.enabled) disabled++;
      else paused++;
    }
    return { armed: this.loop.size, paused, disabled };
  }

  /** The state partition owning an entry; memoized, as it is asked for on every fire. */
  partitionOf(id: string): number {
    return this.entries.partitionOf(id);
  }

  async start(): Promise<void> {
    this.entries.partitionsAre(await this.o.kafka.partitionCount(SCHEDULER_STATE_TOPIC));
    this.partitions.listen();
    await this.consumer.connect();
    await this.consumer.subscribe([SCHEDULER_STATE_TOPIC], true);
    await this.consumer.run({
      partitionsConsumedConcurrently: 1,
      autoCommit: false,
      eachBatch: async (b) => this.states.foldBatch(b),
    });
    this.loop.start();
    this.o.logger.info(
      `scheduler joined group ${this.o.group} with ${this.entries.size} entries over ${this.entries.partitions} state partitions`,
    );
  }

  /**
   * Applies a new version of the schedule (hot reload): removed entries stop, added and changed ones are armed
   * if their partition is ours. A changed entry keeps its last fired instant, so no instant fires twice.
   */
  applyEntries(next: readonly ScheduleEntry[]): EntryDiff {
    const { added, changed, removed } = this.entries.replace(next);
    for (const id of removed) this.loop.remove(id);
    for (const id of [...added, ...changed]) this.arm(this.entries.get(id) as ScheduleEntry);
    this.o.logger.info(
      `schedule reloaded: ${added.length} added [${added.join(',')}], ${changed.length} changed [${changed.join(',')}], ` +
        `${removed.length} removed [${removed.join(',')}]`,
    );
    return { added, changed, removed };
  }

  /**
   * Adds or replaces one entry in O(1) (a task created or changed over HTTP), under the same rules as a reload:
   * armed only when its partition is taken over here, keeping its last fired instant.
   */
  putEntry(e: ScheduleEntry): 'added' | 'changed' | 'same' {
    const outcome = this.entries.put(e);
    if (outcome !== 'same') this.arm(e);
    return outcome;
  }

  /** Removes one entry in O(1): it stops firing. */
  removeEntry(id: string): boolean {
    this.loop.remove(id);
    return this.entries.delete(id);
  }

  /** Arms an added or changed entry when its partition is active here: its overdue fire first, per Misfire. */
  private arm(e: ScheduleEntry): void {
    const owner = this.ownerOf(e.id);
    if (!owner || this.states.isPaused(e.id)) return;
    const now = this.o.clock.now();
    const known = { lastFiredMs: this.states.lastFiredMs(e.id), runs: this.states.runs(e.id) };
    const overdue = overdueFire(e, known, now, this.o.logger);
    owner.enqueue(overdue ? [overdue] : []);
    // Re-adding keeps the loop's last handed-out instant and run count for this id (even those not yet acknowledged).
    this.loop.add(e, now, {
      lastFiredMs: overdue?.scheduledFor ?? known.lastFiredMs,
      runs: known.runs + (overdue ? 1 : 0),
    });
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
    for (const [p, list] of byPartition) this.partitions.enqueue(p, list);
  }

  /** Stops firing, publishes what is queued, leaves the group. Idempotent. Resolves to unpublished fires. */
  stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    this.stopping ??= (async () => {
      this.partitions.halt();
      this.loop.stop();
      await this.deadlines.stop();
      const unsent = await this.partitions.stopOwners({ deadlineMs });
      await this.consumer.stop().catch(() => undefined);
      await this.consumer.disconnect().catch(() => undefined);
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
