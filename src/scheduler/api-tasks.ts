import { backoffDelayMs } from '../shared/backoff.js';
import { sleep, systemClock } from '../shared/clock.js';
import type { Clock } from '../shared/clock.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { partitionForKey } from '../shared/kafka/index.js';
import type { Follower, InRecord, KafkaClient } from '../shared/kafka/index.js';
import { SCHEDULER_STATE_TOPIC, stateKey } from '../shared/codecs/scheduler-state.js';
import {
  DEFAULT_DELETE_RETENTION_MS,
  entryOfTask,
  GROUP_HEADER,
  readTaskRecord,
  TASKS_TOPIC,
} from '../shared/tasks/definition.js';
import { foldTaskRecord, nextKeyState } from '../shared/tasks/task-log.js';
import type { KeyState } from '../shared/tasks/task-log.js';
import type { CalendarsOf } from '../shared/tasks/calendars.js';
import type { PartitionDefinitions } from './state-partitions.js';

/**
 * How long the broker may collect `taskmanager.tasks` records for one fetch. taskapi writes each create as its own
 * record: fetched one by one, they cost this scheduler 0.49 ms of CPU each at 450 creates a second (bench:volume);
 * a task due at once is fired at most this much later.
 */
const TASKS_BATCH_MS = 50;

/** Where the entries of a group's API tasks go, one change at a time. */
export interface ApiTaskSink {
  /** A task of a held partition was created or changed. */
  put(entry: ScheduleEntry): void;
  /** A held task was deleted, left the group, or its partition was released. */
  remove(id: string): void;
}

/**
 * The write rules' state of every key, compact: a version that is an offset (as every version taskapi writes is) is
 * kept as a number, negative after a delete, instead of an object and a string (about 64 bytes less per key, with a
 * million keys held).
 *
 * A deleted key is forgotten once `forgetDeletedMs` (the topic's `delete.retention.ms`) passed twice at most, so
 * that retired one-shots do not accumulate for good: by then compaction may have removed its tombstone, and a reader
 * of the topic from its start does not know the key either. Both then take a later record of the key as the first.
 */
class CompactKeyStates {
  private readonly map = new Map<string, number | KeyState>();
  /** Keys deleted in the current period, and in the one before (forgotten when the current one ends). */
  private deletedNow = new Set<string>();
  private deletedBefore = new Set<string>();
  private periodStart: number;

  constructor(
    private readonly now: () => number,
    private readonly forgetDeletedMs: number,
  ) {
    this.periodStart = now();
  }

  get size(): number {
    return this.map.size;
  }

  get(key: string): KeyState | undefined {
    const v = this.map.get(key);
    if (typeof v !== 'number') return v;
    return v >= 0 ? { version: String(v), present: true } : { version: String(-v - 1), present: false };
  }

  set(key: string, state: KeyState): void {
    this.forgetOldDeletes();
    const n = Number(state.version);
    const compact = Number.isSafeInteger(n) && n >= 0 && String(n) === state.version;
    this.map.set(key, compact ? (state.present ? n : -n - 1) : state);
    this.deletedBefore.delete(key);
    if (state.present) this.deletedNow.delete(key);
    else this.deletedNow.add(key);
  }

  delete(key: string): boolean {
    this.deletedNow.delete(key);
    this.deletedBefore.delete(key);
    return this.map.delete(key);
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  private forgetOldDeletes(): void {
    const now = this.now();
    if (now - this.periodStart < this.forgetDeletedMs) return;
    for (const key of this.deletedBefore) this.map.delete(key);
    this.deletedBefore = this.deletedNow;
    this.deletedNow = new Set();
    this.periodStart = now;
  }
}

/** One read of `taskmanager.tasks` from its start: every key's state, and the definitions it keeps. */
class TasksRead {
  /**
   * The state under the topic's write rules (shared/tasks/task-log.ts) of every key whose state partition in this
   * group is wanted, whatever group its record names.
   */
  readonly keys: CompactKeyStates;
  /** The group's entries whose state partition is in `wanted`. */
  readonly held = new Map<string, ScheduleEntry>();
  /** Offset of the last record read, per partition of the tasks topic. */
  readonly read = new Map<number, bigint>();
  follower: Follower | undefined;
  /** Where the read it replaces stopped applying records: it takes over once it is there too. */
  handoverAt: ReadonlyMap<number, bigint> | undefined;

  constructor(
    readonly wanted: Set<number>,
    now: () => number,
    forgetDeletedMs: number,
  ) {
    this.keys = new CompactKeyStates(now, forgetDeletedMs);
  }

  /** Whether this read is at or past `positions` on every partition. */
  reached(positions: ReadonlyMap<number, bigint>): boolean {
    for (const [p, offset] of positions) if ((this.read.get(p) ?? -1n) < offset) return false;
    return true;
  }
}

/**
 * The tasks created over HTTP that a scheduler group fires: `taskmanager.tasks` followed from its start, holding only
 * the definitions of this group whose state partition (`<group>/<id>` over the state topic's partitions, as
 * EntryCatalog) this instance owns. A record whose id falls in another state partition is dropped once its key is
 * hashed; of one in an owned partition but of another group (per its `tm-group` header; a record without it is
 * parsed) only the key's version is kept, as the write rules need it. Each change reaches the sink as it is read,
 * one entry at a time.
 *
 * Gaining state partitions (a rebalance, a failover) reads the topic again from its start, keeping the definitions
 * of the owned and the gained partitions, while the current read goes on; once the new read is caught up and past
 * where the current one is, it replaces it and hands over what differs. So the takeover cost grows with the topic
 * (docs/delivery.md#api-tasks-and-state-partitions).
 */
export class ApiTaskSource implements PartitionDefinitions {
  private current: TasksRead | undefined;
  /** A read being built for new partitions; the current one stops applying records once it is caught up. */
  private next: TasksRead | undefined;
  private handingOver = false;
  private enabled = false;
  private statePartitions = 0;
  /** The tasks topic's `delete.retention.ms` (Kafka's default when it cannot be described). */
  private forgetDeletedMs = DEFAULT_DELETE_RETENTION_MS;
  private stopped = false;
  private onStop: () => void = () => undefined;
  /** Resolves at stop: a read in progress gives up. */
  private readonly stopping = new Promise<void>((resolve) => (this.onStop = resolve));

  constructor(
    private readonly kafka: KafkaClient,
    private readonly group: string,
    private readonly logger: Logger,
    private readonly sink: ApiTaskSink,
    private readonly clock: Clock = systemClock,
    private readonly calendarsOf?: CalendarsOf,
  ) {}

  /**
   * A calendar changed (or was deleted): each held task naming it is made again with the dates it now excludes and
   * reaches the sink, which arms it again from now (keeping its last fired instant); a read being built for a
   * takeover is brought up to date too, so its handover does not put back the old dates. O(held tasks), once per
   * change.
   */
  calendarChanged(name: string): void {
    for (const read of [this.current, this.next]) {
      if (!read) continue;
      for (const [id, e] of read.held) {
        if (!e.calendars?.includes(name)) continue;
        const excluded = this.calendarsOf?.(e.calendars);
        const { excluded: _old, ...rest } = e;
        const again: ScheduleEntry = excluded ? { ...rest, excluded } : rest;
        read.held.set(id, again);
        if (read === this.current) this.sink.put(again);
      }
    }
  }

  /** Definitions held now. */
  get size(): number {
    return this.current?.held.size ?? 0;
  }

  /** Checks the topic and learns the state topic's partition count; nothing is read before partitions are gained. */
  async start(): Promise<void> {
    this.statePartitions = await this.kafka.partitionCount(SCHEDULER_STATE_TOPIC);
    if (!(await this.kafka.existingTopics([TASKS_TOPIC])).has(TASKS_TOPIC)) {
      this.logger.warn(
        `topic ${TASKS_TOPIC} does not exist: tasks created over HTTP are not fired (create it with scripts/create-topics.sh)`,
      );
      return;
    }
    this.forgetDeletedMs =
      (await this.kafka.topicLayout(TASKS_TOPIC)).deleteRetentionMs ?? this.forgetDeletedMs;
    this.enabled = true;
  }

  /** The keys whose state is kept (held definitions, keys of other groups in owned partitions, recent deletes). */
  get keyStates(): number {
    return this.current?.keys.size ?? 0;
  }

  /** The held entries (of the owned state partitions). */
  list(): ScheduleEntry[] {
    return [...(this.current?.held.values() ?? [])];
  }

  /** The state partition of one of this group's tasks. */
  partitionOf(id: string): number {
    return partitionForKey(stateKey(this.group, id), this.statePartitions);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.onStop();
    await this.next?.follower?.stop();
    await this.current?.follower?.stop();
  }

  /** Drops the definitions of released partitions. */
  released(partitions: readonly number[]): void {
    const read = this.current;
    if (!read) return;
    const gone = new Set(partitions);
    for (const p of gone) read.wanted.delete(p);
    for (const id of [...read.keys.keys()])
      if (gone.has(this.partitionOf(id))) {
        read.keys.delete(id);
        if (read.held.delete(id)) this.sink.remove(id);
      }
  }

  /**
   * Reads the topic from its start, keeping the owned and the gained partitions' definitions, and swaps that read
   * in once it is caught up; the gained entries reach the sink before this resolves. A read that fails is tried
   * again until it succeeds or the source stops.
   */
  async gained(partitions: readonly number[]): Promise<void> {
    // A partition taken over again (its producer was fenced) kept its definitions.
    const added = partitions.filter((p) => !this.current?.wanted.has(p));
    if (!this.enabled || added.length === 0) return;
    for (let attempt = 1; !this.stopped; attempt++) {
      try {
        await this.readAgain(new Set([...(this.current?.wanted ?? []), ...added]));
        return;
      } catch (err) {
        await this.next?.follower?.stop();
        this.next = undefined;
        this.handingOver = false;
        const delayMs = backoffDelayMs(attempt, { baseMs: 500, maxMs: 5000 });
        this.logger.warn(
          `reading ${TASKS_TOPIC} for state partitions [${added.join(',')}] failed (${errorMessage(err)}); ` +
            `trying again in ${delayMs} ms`,
        );
        await sleep(this.clock, delayMs);
      }
    }
  }

  private async readAgain(wanted: Set<number>): Promise<void> {
    const started = this.clock.now();
    const read = new TasksRead(wanted, () => this.clock.now(), this.forgetDeletedMs);
    this.next = read;
    let swap: () => void = () => undefined;
    const swapped = new Promise<void>((resolve) => {
      swap = () => {
        this.swap(read);
        resolve();
      };
    });
    read.follower = await this.kafka.follow(
      TASKS_TOPIC,
      (r) => {
        if (this.current === read) {
          // Handing over to a newer read: that one applies this record.
          if (!this.handingOver) this.fold(read, r, true);
          return;
        }
        if (this.next !== read) return;
        this.fold(read, r, false);
        if (read.handoverAt && read.reached(read.handoverAt)) swap();
      },
      { fromBeginning: true, batchMs: TASKS_BATCH_MS },
    );
    await Promise.race([read.follower.caughtUp, this.stopping]);
    if (this.stopped) return;
    // From here on the current read applies nothing more; this one goes on to where it stopped, then takes over.
    this.handingOver = true;
    read.handoverAt = new Map(this.current?.read ?? []);
    if (read.reached(read.handoverAt)) swap();
    await Promise.race([swapped, this.stopping]);
    if (this.stopped) return;
    this.logger.info(
      `${read.held.size} task(s) from ${TASKS_TOPIC} for group ${this.group} in state partitions ` +
        `[${[...wanted].sort((a, b) => a - b).join(',')}] (read ${read.keys.size} keys in ${this.clock.now() - started} ms)`,
    );
  }

  /** The new read becomes the current one: what it holds differently reaches the sink. */
  private swap(read: TasksRead): void {
    const old = this.current;
    this.current = read;
    this.next = undefined;
    this.handingOver = false;
    for (const id of old?.held.keys() ?? []) if (!read.held.has(id)) this.sink.remove(id);
    for (const e of read.held.values()) if (old?.held.get(e.id) !== e) this.sink.put(e);
    void old?.follower?.stop();
  }

  /**
   * Applies one record to a read; `live`: changes reach the sink. Only ids whose state partition in this group is
   * wanted are kept, whatever group their record names: a task of another group that moves to this one lands in
   * that partition, and a partition gained is read again from the start. Of those, a tombstone or a record whose
   * `tm-group` header names another group is not parsed: only the key's version changes.
   */
  private fold(read: TasksRead, r: InRecord, live: boolean): void {
    read.read.set(r.partition, BigInt(r.offset));
    const key = r.key?.toString('utf8');
    if (key && !read.wanted.has(this.partitionOf(key))) return;
    const group = r.headers[GROUP_HEADER];
    const parse = !key || (r.value !== null && (group === undefined || group === this.group));
    const record = parse ? readTaskRecord(r, this.logger) : { id: key, def: undefined };
    if (!record) return;
    const { id, def, spec } = record;
    const prev = read.keys.get(id);
    const outcome = foldTaskRecord(prev, r);
    if (outcome.kind === 'rejected' || outcome.kind === 'same') return;
    read.keys.set(id, nextKeyState(prev, outcome)!);
    if (!def || !spec || def.group !== this.group) {
      if (read.held.delete(id) && live) this.sink.remove(id);
      return;
    }
    const entry = entryOfTask(def, spec, this.calendarsOf);
    read.held.set(id, entry);
    if (live) this.sink.put(entry);
  }
}
