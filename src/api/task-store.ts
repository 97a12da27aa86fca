import { hostname } from 'node:os';
import type { Clock } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { encodeJson } from '../shared/messages.js';
import { EVENTS_TOPIC, scheduledEvent, statusEventRecord } from '../shared/codecs/task-event.js';
import { manualFireInstant, taskMessageOf, taskRecord } from '../shared/codecs/task-message.js';
import { DEFAULT_DELETE_RETENTION_MS, GROUP_HEADER, TASKS_TOPIC } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { ACTOR_HEADER, BASE_HEADER, OP_HEADER } from '../shared/tasks/task-log.js';
import type { TaskLogOutcome, TaskOp } from '../shared/tasks/task-log.js';
import type { FollowOptions } from '../shared/kafka/index.js';
import { TRACEPARENT_HEADER } from '../shared/tracing.js';
import type { FollowedTopic, KafkaStore } from './kafka-store.js';
import type { TaskDefs } from './task-defs.js';
import { EventRates } from './event-rates.js';
import { ApiError } from './problem.js';
import { DEFAULT_KEEP_FINISHED_MS, Retirement, RETIREMENT_ACTOR, retiredRunHeader } from './retirement.js';
import { TaskView } from './task-view.js';
import { AlertBook } from './alert-book.js';
import { consumerAlerts } from '../shared/schedule/alerts.js';
import type { ViewTask } from './task-view.js';

export interface TaskStoreOptions {
  store: KafkaStore;
  logger: Logger;
  clock: Clock;
  /** How far back run history is read from taskmanager.events at start. @default 24 h */
  historyMs?: number;
  /** How long a one-shot task stays after its run ended (`--keep-finished`). @default 24 h */
  keepFinishedMs?: number;
  /** Where the definitions are kept, with what the view folded before. @default in memory */
  defs?: TaskDefs;
  /** Where taskmanager.tasks is read from (after the store's checkpoint). @default its start */
  from?: FollowOptions;
  /** taskmanager.tasks's `delete.retention.ms`: deleted ids are remembered this long. @default 24 h */
  deleteRetentionMs?: number;
}

/** How often deleted ids older than the topic's `delete.retention.ms` are forgotten. */
const FORGET_DELETED_EVERY_MS = 3600_000;
const FIRST_FORGET_AFTER_MS = 60_000;

/** Of several taskapi instances, the first to retire a task usually does it within this spread of the others. */
const RETIREMENT_SPREAD_MS = 5000;

/** How long taskmanager.events is collected per fetch. */
const EVENTS_BATCH_MS = 50;

/** The answer to a write: the task as now stored, or null after a delete. */
export interface WriteResult {
  task: ViewTask | null;
}

/**
 * Tasks in Kafka: `taskmanager.tasks` and `taskmanager.events` folded into a {@link TaskView}, and writes under
 * the topic's rules (shared/tasks/task-log.ts): a create of an existing id, or a change based on a version that is
 * no longer current, answers 409 whichever instance raced it.
 */
export class TaskStore {
  readonly view: TaskView;
  /** Tasks per second and fire lag over the last minutes, from the same events. */
  readonly rates: EventRates;
  /** Removes one-shot tasks whose run ended `keepFinished` ago. */
  readonly retirement: Retirement;
  /** The alerts of ALERT events read, and their acknowledgements (`alert-book.ts`). */
  readonly alerts = new AlertBook();
  private forgetTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: TaskStoreOptions) {
    this.view = new TaskView(
      o.logger,
      (r, outcome) => {
        o.store.settle(r, outcome);
        this.retirement.onTaskRecord(r, outcome);
      },
      o.defs,
    );
    this.rates = new EventRates(o.clock);
    this.retirement = new Retirement({
      clock: o.clock,
      logger: o.logger,
      keepFinishedMs: o.keepFinishedMs ?? DEFAULT_KEEP_FINISHED_MS,
      current: (id) => this.view.get(id),
      // Only tasks with runs can have ended one (a million tasks at start, a few thousand runs).
      ids: () => [...this.view.runs.scheduleIds()],
      latestRun: (id) => this.view.latestRun(id),
      retire: async (id, version, run) => {
        await this.write(id, null, 'delete', RETIREMENT_ACTOR, version, retiredRunHeader(run));
      },
      spreadMs: RETIREMENT_SPREAD_MS,
    });
  }

  /** The topics to materialise (KafkaStore.start reads them). */
  topics(): FollowedTopic[] {
    return [
      {
        topic: TASKS_TOPIC,
        onRecord: (r) => this.view.onTaskRecord(r),
        from: this.o.from ?? { fromBeginning: true },
      },
      {
        topic: EVENTS_TOPIC,
        onRecord: (r) => {
          for (const e of this.view.onEventRecord(r)) {
            this.rates.add(e);
            this.retirement.onEvent(e);
            this.alerts.onEvent(e);
          }
        },
        // Far enough back for the runs whose tasks are still to be retired. Read in fetches of up to 50 ms: every
        // task run writes several events, and nothing waits on one to answer a request.
        from: {
          fromTimestamp:
            this.o.clock.now() -
            Math.max(this.o.historyMs ?? 24 * 3600_000, this.o.keepFinishedMs ?? DEFAULT_KEEP_FINISHED_MS),
          batchMs: EVENTS_BATCH_MS,
        },
      },
    ];
  }

  /** Once the topics are read: order the view, and finish repairs a crashed writer left undone. */
  started(): void {
    this.view.seal();
    for (const id of [...this.view.unrepaired]) void this.repair(id).catch(() => undefined);
    this.retirement.start();
    // The first pass a minute after start, off the start-up path (it walks every deleted id of the store).
    this.forgetTimer = setTimeout(() => {
      void this.forgetDeleted();
      this.forgetTimer = setInterval(() => void this.forgetDeleted(), FORGET_DELETED_EVERY_MS);
      this.forgetTimer.unref();
    }, FIRST_FORGET_AFTER_MS);
    this.forgetTimer.unref();
  }

  stop(): void {
    this.retirement.stop();
    clearTimeout(this.forgetTimer);
    clearInterval(this.forgetTimer);
  }

  /**
   * Forgets the ids deleted (retired, mostly) longer than the topic's `delete.retention.ms` ago, as compaction
   * forgets their tombstones: what the view keeps does not grow with history.
   */
  async forgetDeleted(): Promise<number> {
    const retention = this.o.deleteRetentionMs ?? DEFAULT_DELETE_RETENTION_MS;
    const n = await this.view.defs
      .forgetDeletedBefore(this.o.clock.now() - retention)
      .catch((err: unknown) => {
        this.o.logger.warn(
          `forgetting deleted task ids failed (${errorMessage(err)}); tried again in an hour`,
        );
        return 0;
      });
    if (n > 0)
      this.o.logger.info(
        `forgot ${n} task id(s) deleted more than ${TASKS_TOPIC}'s delete.retention.ms (${retention} ms) ago`,
      );
    return n;
  }

  create(def: TaskDefinition, actor: string): Promise<WriteResult> {
    return this.write(def.id, def, 'create', actor);
  }

  /** Replaces the definition the client saw as `base`. */
  update(def: TaskDefinition, base: string, actor: string): Promise<WriteResult> {
    return this.write(def.id, def, 'update', actor, base);
  }

  remove(id: string, base: string, actor: string): Promise<WriteResult> {
    return this.write(id, null, 'delete', actor, base);
  }

  /**
   * Fires a task once now, outside its schedule: its task message and SCHEDULED event, straight to Kafka (no
   * scheduler needed; like `taskscheduler trigger`, the taskId's instant is never a whole second). `traceparent`:
   * the run's trace context, carried by both records as their `traceparent` header.
   */
  async fireNow(def: TaskDefinition, traceparent?: string): Promise<string> {
    const nowMs = this.o.clock.now();
    const origin = { host: hostname(), pid: process.pid };
    const task = taskMessageOf(
      {
        scheduleId: def.id,
        processor: def.processor,
        param: def.param,
        payload: def.payload,
        overlap: def.overlap,
        alerts: consumerAlerts(def.alerts),
      },
      manualFireInstant(nowMs),
      nowMs,
      { ...origin, group: def.group },
    );
    const { taskId } = task;
    const records = [
      taskRecord(def.topic, task),
      statusEventRecord(scheduledEvent(task, task.firedAt, { ...origin, role: 'api' })),
    ];
    if (traceparent !== undefined)
      for (const r of records) (r.headers ??= {})[TRACEPARENT_HEADER] = traceparent;
    await this.o.store.send(records);
    return taskId;
  }

  private async write(
    id: string,
    def: TaskDefinition | null,
    op: TaskOp,
    actor: string,
    base?: string,
    headers: Record<string, string> = {},
  ): Promise<WriteResult> {
    const outcome = await this.o.store.write<TaskLogOutcome>(TASKS_TOPIC, id, def && encodeJson(def), {
      [OP_HEADER]: op,
      [ACTOR_HEADER]: actor,
      ...(def === null ? {} : { [GROUP_HEADER]: def.group }),
      ...(base === undefined ? {} : { [BASE_HEADER]: base }),
      ...headers,
    });
    if (outcome.kind === 'rejected') {
      await this.repair(id);
      throw new ApiError(409, conflictMessage(id, op, outcome.reason));
    }
    return { task: this.view.get(id) ?? null };
  }

  /** Restates the key's current state after a rejected record (see KafkaStore.restate). */
  repair(id: string): Promise<void> {
    return this.o.store.restate(TASKS_TOPIC, id, () => {
      const state = this.view.keyState(id);
      if (!state || !this.view.unrepaired.has(id)) return undefined;
      const current = this.view.get(id);
      return { value: current ? encodeJson(current.def) : null, version: state.version };
    });
  }
}

function conflictMessage(id: string, op: TaskOp, reason: string): string {
  if (op === 'create') return `task ${id} already exists`;
  return `task ${id} changed meanwhile (${reason}): get it again and retry with its new ETag`;
}
