import type { Clock, TimerHandle } from '../shared/clock.js';
import type { StatusEvent } from '../shared/codecs/task-event.js';
import { formatDuration, parseDuration } from '../shared/duration.js';
import { errorMessage } from '../shared/errors.js';
import { MinHeap } from '../shared/heap.js';
import type { InRecord } from '../shared/kafka/index.js';
import type { Logger } from '../shared/logger.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { ACTOR_HEADER } from '../shared/tasks/task-log.js';
import type { TaskLogOutcome } from '../shared/tasks/task-log.js';
import { isFinalRun } from './run-history.js';
import type { TaskRun } from './run-history.js';

/** `--keep-finished` by default: a finished one-shot task stays a day. */
export const DEFAULT_KEEP_FINISHED_MS = 24 * 3_600_000;
/** The actor a retirement's delete names (header `tm-actor`), in the audit trail as any other change. */
export const RETIREMENT_ACTOR = 'retirement';
/** The header of a retirement's delete: the run it followed, as JSON (see {@link RetiredRun}). */
export const RETIRED_RUN_HEADER = 'tm-retired-run';
/** How often due retirements are looked for. */
const SWEEP_MS = 1000;
/** How long a retired task's id is remembered for its 404 answer. */
const REMEMBER_RETIRED_MS = 24 * 3_600_000;

/** The run a one-shot task was retired after. */
export interface RetiredRun {
  taskId: string;
  state: 'FINISHED' | 'FAILED' | 'CANCELLED' | 'SKIPPED';
  /** When its final event was written. */
  endedAt: string;
}

/** A task removed by retirement, as its 404 tells it. */
export interface Retired {
  id: string;
  retiredAt: string;
  run?: RetiredRun;
}

export interface RetirementOptions {
  clock: Clock;
  logger: Logger;
  /** `--keep-finished`, for tasks without their own `keepFinished`. */
  keepFinishedMs: number;
  /** A task's definition and version now, or undefined when there is none. */
  current(id: string): { def: TaskDefinition; version: string } | undefined;
  /** The ids of the tasks that may have a run that ended (every task with runs; looked through once, at start). */
  ids(): Iterable<string>;
  /** A task's latest run, as its events tell it. */
  latestRun(id: string): TaskRun | undefined;
  /** Deletes the task if it is still at `version` (a conditional delete under the topic's write rules). */
  retire(id: string, version: string, run: RetiredRun): Promise<void>;
  /**
   * Added to each due time, so that of several taskapi instances one usually retires a task before the others
   * look (they then find it gone); a race costs a rejected delete and its repair, never a second delete.
   */
  spreadMs?: number;
}

interface Due {
  at: number;
  id: string;
  run: RetiredRun;
}

/** Whether an event ends a run for good: FINISHED, CANCELLED, SKIPPED, or FAILED into the dead-letter topic. */
function finalState(e: StatusEvent): RetiredRun['state'] | undefined {
  if (e.status === 'FINISHED' || e.status === 'CANCELLED' || e.status === 'SKIPPED') return e.status;
  if (e.status === 'FAILED' && e.final) return 'FAILED';
  return undefined;
}

/**
 * Retires one-shot tasks: a task whose schedule is a `runAt` and whose latest run (the one its instant fired, taskId
 * `id@runAt`, or a manual run after it) ended for good is deleted from `taskmanager.tasks` `keepFinished` after that end. The delete is
 * conditional on the version the task had when it came due (task-log.ts): a task changed meanwhile (a new `runAt`)
 * is not deleted, and when several taskapi instances retire the same task the first delete is the one in effect
 * (the others are rejected by every reader, and their writers restate the deletion). Recurring tasks are never
 * retired. Due retirements are rebuilt from the events read at start (`--history`), so a restart loses none whose
 * run ended within that window.
 */
export class Retirement {
  private readonly due = new MinHeap<Due>((d) => d.at);
  private readonly retired = new Map<string, Retired>();
  private timer: TimerHandle | undefined;
  private sweeping = false;
  private retiredCount = 0;

  constructor(private readonly o: RetirementOptions) {}

  /** Tasks retired by this instance since start. */
  get count(): number {
    return this.retiredCount;
  }

  /** Retirements waiting for their time. */
  get pending(): number {
    return this.due.size;
  }

  /**
   * A status event once started: the end of a one-shot's run puts the task's retirement on the list. (The events
   * read at start are looked at through the runs they left, in `start`: an event may be read before its task.)
   */
  onEvent(e: StatusEvent): void {
    const state = finalState(e);
    if (state && this.timer) this.schedule(e.scheduleId, { taskId: e.taskId, state, endedAt: e.at });
  }

  private schedule(id: string, run: RetiredRun): void {
    const now = this.o.current(id);
    const keepMs = now && this.keepOf(now.def, run.taskId);
    if (keepMs === undefined) return;
    const endedAt = Date.parse(run.endedAt);
    const spread = Math.floor(Math.random() * (this.o.spreadMs ?? 0));
    this.due.push({
      at: (Number.isFinite(endedAt) ? endedAt : this.o.clock.now()) + keepMs + spread,
      id,
      run,
    });
  }

  /** The run of a task as the retirement names it, when it ended for good. */
  private endedRun(id: string): RetiredRun | undefined {
    const run = this.o.latestRun(id);
    if (!run || !isFinalRun(run.state)) return undefined;
    return {
      taskId: run.taskId,
      state: run.state,
      endedAt: run.finishedAt ?? new Date(this.o.clock.now()).toISOString(),
    };
  }

  /** A record of `taskmanager.tasks` and its outcome: remembers accepted retirements, forgets re-created ids. */
  onTaskRecord(r: InRecord, outcome: TaskLogOutcome): void {
    const id = r.key?.toString('utf8');
    if (!id) return;
    if (outcome.kind === 'put') this.retired.delete(id);
    if (outcome.kind !== 'delete' || r.headers[ACTOR_HEADER] !== RETIREMENT_ACTOR) return;
    const run = parseRetiredRun(r.headers[RETIRED_RUN_HEADER]);
    this.retired.set(id, {
      id,
      retiredAt: new Date(Number(r.timestamp)).toISOString(),
      ...(run ? { run } : {}),
    });
  }

  /** What is known of a task that retirement removed (while its delete is remembered). */
  retiredTask(id: string): Retired | undefined {
    return this.retired.get(id);
  }

  /** Once the topics are read: lists the one-shots whose run ended, and starts retiring them when due. */
  start(): void {
    // Only tasks whose latest run ended are read from the store (schedule() looks at their definition).
    for (const id of this.o.ids()) {
      const run = this.endedRun(id);
      if (run) this.schedule(id, run);
    }
    if (this.due.size > 0)
      this.o.logger.info(`${this.due.size} finished one-shot task(s) to retire when due`);
    this.arm();
  }

  stop(): void {
    if (this.timer) this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * The retention of a task whose run `taskId` ended, or undefined when that does not retire it: only a one-shot,
   * and only after a run at or after its instant (the one its `runAt` fired, or a manual run after it; not a manual
   * run before the instant, which leaves the scheduled run to come).
   */
  private keepOf(def: TaskDefinition, taskId: string): number | undefined {
    if (!('runAt' in def.schedule)) return undefined;
    const runAtMs = Date.parse(String(def.schedule.runAt));
    const ranForMs = Date.parse(taskId.slice(taskId.lastIndexOf('@') + 1));
    if (!(ranForMs >= runAtMs)) return undefined;
    return def.keepFinished === undefined
      ? this.o.keepFinishedMs
      : (parseDuration(def.keepFinished) ?? this.o.keepFinishedMs);
  }

  private arm(): void {
    this.timer = this.o.clock.setTimeout(() => {
      void this.sweep().finally(() => {
        if (this.timer) this.arm();
      });
    }, SWEEP_MS);
  }

  /** Retires every task that is due, one after the other. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const now = this.o.clock.now();
      for (let d = this.due.peek(); d && d.at <= now; d = this.due.peek()) {
        this.due.pop();
        await this.retireIfStill(d);
      }
      // In the order they were retired (a Map keeps insertion order): the sweep stops at the first one to keep,
      // instead of looking through every retired task each second.
      for (const [id, r] of this.retired) {
        if (now - Date.parse(r.retiredAt) <= REMEMBER_RETIRED_MS) break;
        this.retired.delete(id);
      }
    } finally {
      this.sweeping = false;
    }
  }

  private async retireIfStill(d: Due): Promise<void> {
    const now = this.o.current(d.id);
    // Gone (retired by another instance, or deleted), or changed since to another run or a recurring schedule, or
    // its run replayed from the dead-letter topic (its new end puts it on the list again).
    if (!now || this.keepOf(now.def, d.run.taskId) === undefined) return;
    if (this.endedRun(d.id)?.taskId !== d.run.taskId) return;
    try {
      await this.o.retire(d.id, now.version, d.run);
      this.retiredCount++;
      this.o.logger.info(
        `task ${d.id} retired: its run ${d.run.taskId} ended ${d.run.state} at ${d.run.endedAt}, ` +
          `${formatDuration(this.keepOf(now.def, d.run.taskId) ?? 0)} ago`,
        { taskId: d.run.taskId },
      );
    } catch (err) {
      // Another instance retired it first, or a change raced this one: the view decides again on the next event.
      this.o.logger.debug(`task ${d.id} not retired: ${errorMessage(err)}`);
    }
  }
}

function parseRetiredRun(text: string | undefined): RetiredRun | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as Partial<RetiredRun>;
    if (
      typeof v.taskId === 'string' &&
      (v.state === 'FINISHED' || v.state === 'FAILED' || v.state === 'CANCELLED' || v.state === 'SKIPPED') &&
      typeof v.endedAt === 'string'
    )
      return { taskId: v.taskId, state: v.state, endedAt: v.endedAt };
  } catch {
    // An unreadable header: the task is still known as retired, without its run.
  }
  return undefined;
}

/** The headers of a retirement's delete. */
export function retiredRunHeader(run: RetiredRun): Record<string, string> {
  return { [RETIRED_RUN_HEADER]: JSON.stringify(run) };
}
