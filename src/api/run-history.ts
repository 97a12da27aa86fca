import type { StatusEvent } from '../shared/codecs/task-event.js';

/** Where one run (one fire, one taskId) stands. */
export type RunState = 'QUEUED' | 'RUNNING' | 'RETRYING' | 'FINISHED' | 'FAILED' | 'CANCELLED' | 'SKIPPED';
export const RUN_STATES: readonly RunState[] = [
  'QUEUED',
  'RUNNING',
  'RETRYING',
  'FINISHED',
  'FAILED',
  'CANCELLED',
  'SKIPPED',
];

/** The states a run does not leave (but for an operator's replay of a FAILED one from the DLQ). */
export function isFinalRun(state: RunState): state is 'FINISHED' | 'FAILED' | 'CANCELLED' | 'SKIPPED' {
  return state === 'FINISHED' || state === 'FAILED' || state === 'CANCELLED' || state === 'SKIPPED';
}

/** One run of a task, folded from its events on `taskmanager.events`. */
export interface TaskRun {
  taskId: string;
  scheduledFor: string;
  state: RunState;
  /** Attempts started so far. */
  attempts: number;
  firedAt?: string;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  /** The last error, when an attempt failed. */
  error?: string;
  /** Why it went to the dead-letter topic. */
  dlqReason?: string;
  /** The consumer that ran the last attempt. */
  consumer?: { host: string; pid: number };
  /** Times an operator replayed it from the DLQ. */
  replays?: number;
  /** On CANCELLED: who asked and why. */
  cancelled?: string;
  /** On SKIPPED: the run of the same schedule that was still running or waiting (overlap policy `skip`). */
  skipped?: string;
  /** What the running attempt's processor last reported through `ctx.progress` (PROGRESS events). */
  progress?: { fraction: number; message?: string; at: string };
}

/** `id@2026-11-22T10:00:05.000Z` → the instant after the last `@`, as written. */
function scheduledForOf(taskId: string): string {
  const at = taskId.lastIndexOf('@');
  return at < 0 ? '' : taskId.slice(at + 1);
}

/**
 * The last `keep` runs of every schedule, newest first, folded from status events in any order across partitions
 * (one run's events share a key, hence a partition, so they arrive in order; but for its SCHEDULED from a batch
 * record, on another partition, which only sets `firedAt`).
 */
export class RunHistory {
  private readonly bySchedule = new Map<string, Map<string, TaskRun>>();

  constructor(private readonly keep = 20) {}

  /** Folds one event; returns its schedule id when that schedule's history changed. */
  fold(e: StatusEvent): string | undefined {
    let runs = this.bySchedule.get(e.scheduleId);
    if (!runs) this.bySchedule.set(e.scheduleId, (runs = new Map()));
    let run = runs.get(e.taskId);
    if (!run) {
      // An alert about an instant that never ran (`missed`) is no run.
      if (e.status === 'ALERT') return undefined;
      const scheduledFor = scheduledForOf(e.taskId);
      // A late event of a run already dropped from a full history stays dropped.
      if (runs.size >= this.keep && scheduledFor < this.oldest(runs)) return undefined;
      run = { taskId: e.taskId, scheduledFor, state: 'QUEUED', attempts: 0 };
      runs.set(e.taskId, run);
      if (runs.size > this.keep) runs.delete(this.oldestId(runs));
    }
    applyEvent(run, e);
    return e.scheduleId;
  }

  /** Newest first. */
  runs(scheduleId: string): TaskRun[] {
    const runs = this.bySchedule.get(scheduleId);
    if (!runs) return [];
    return [...runs.values()].sort((a, b) => (a.scheduledFor < b.scheduledFor ? 1 : -1));
  }

  latest(scheduleId: string): TaskRun | undefined {
    let best: TaskRun | undefined;
    for (const r of this.bySchedule.get(scheduleId)?.values() ?? [])
      if (!best || r.scheduledFor > best.scheduledFor) best = r;
    return best;
  }

  /** The schedules with runs here. */
  scheduleIds(): IterableIterator<string> {
    return this.bySchedule.keys();
  }

  forget(scheduleId: string): void {
    this.bySchedule.delete(scheduleId);
  }

  private oldest(runs: Map<string, TaskRun>): string {
    return runs.get(this.oldestId(runs))?.scheduledFor ?? '';
  }

  private oldestId(runs: Map<string, TaskRun>): string {
    let id = '';
    let at: string | undefined;
    for (const r of runs.values())
      if (at === undefined || r.scheduledFor < at) {
        at = r.scheduledFor;
        id = r.taskId;
      }
    return id;
  }
}

/**
 * What an event of a consumer's attempt tells of it, whichever event it is: an attempt whose EXECUTING was never
 * written (it ended within `--executing-after-ms`) is known from its final event alone, which says when it started
 * (`startedAt`) and who ran it (`by`). Events of consumers before `startedAt` leave the EXECUTING's start in place.
 */
function attemptOf(run: TaskRun, e: StatusEvent): void {
  if (e.attempt <= 0 || e.by.role !== 'consumer') return;
  // A new attempt starts from nothing.
  if (e.attempt > run.attempts) delete run.progress;
  if (e.startedAt !== undefined) run.startedAt = e.startedAt;
  run.consumer = { host: e.by.host, pid: e.by.pid };
}

function applyEvent(run: TaskRun, e: StatusEvent): void {
  switch (e.status) {
    case 'SCHEDULED':
      run.firedAt = e.at;
      return;
    case 'REPLAYED':
      run.state = 'QUEUED';
      run.replays = (run.replays ?? 0) + 1;
      return;
    case 'PROGRESS':
      // How far an attempt is: never a state of its own. One of an attempt older than the run's last is stale.
      if (e.progress && e.attempt >= run.attempts)
        run.progress = {
          fraction: e.progress.fraction,
          ...(e.progress.message === undefined ? {} : { message: e.progress.message }),
          at: e.at,
        };
      return;
    case 'ALERT':
      // An alert about the run (alerts.ts): kept by the alert book, never a state of the run.
      return;
    case 'EXECUTING':
      attemptOf(run, e);
      run.state = 'RUNNING';
      run.startedAt = e.startedAt ?? e.at;
      run.attempts = Math.max(run.attempts, e.attempt);
      return;
    case 'FINISHED':
      attemptOf(run, e);
      run.state = 'FINISHED';
      run.finishedAt = e.at;
      run.attempts = Math.max(run.attempts, e.attempt);
      if (e.durationMs !== undefined) run.durationMs = e.durationMs;
      return;
    case 'CANCELLED':
      attemptOf(run, e);
      run.state = 'CANCELLED';
      run.finishedAt = e.at;
      run.attempts = Math.max(run.attempts, e.attempt);
      if (e.error !== undefined) run.cancelled = e.error;
      if (e.durationMs !== undefined) run.durationMs = e.durationMs;
      return;
    case 'SKIPPED':
      run.state = 'SKIPPED';
      run.finishedAt = e.at;
      if (e.error !== undefined) run.skipped = e.error;
      return;
    case 'FAILED':
      attemptOf(run, e);
      run.state = e.final ? 'FAILED' : 'RETRYING';
      run.attempts = Math.max(run.attempts, e.attempt);
      if (e.error !== undefined) run.error = e.error;
      if (e.durationMs !== undefined) run.durationMs = e.durationMs;
      if (e.final) {
        run.finishedAt = e.at;
        if (e.dlqReason !== undefined) run.dlqReason = e.dlqReason;
      }
      return;
  }
}
