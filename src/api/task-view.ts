import type { Logger } from '../shared/logger.js';
import type { InRecord } from '../shared/kafka/index.js';
import { parseStatusEvent } from '../shared/codecs/task-event.js';
import type { StatusEvent } from '../shared/codecs/task-event.js';
import { readTaskRecord } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { foldTaskRecord, nextKeyState } from '../shared/tasks/task-log.js';
import type { KeyState, TaskLogOutcome } from '../shared/tasks/task-log.js';
import { RunHistory } from './run-history.js';
import type { TaskRun } from './run-history.js';
import { stateOf } from './task-model.js';
import type { TaskState } from './task-model.js';

/** A task in the view: its definition, version, and its status kept current as events arrive (for filtering). */
export interface ViewTask {
  def: TaskDefinition;
  version: string;
  state: TaskState;
  /** `def.processor`, kept beside the state so a filtered scan reads one object per task. */
  processor: string;
}

export interface ListQuery {
  limit: number;
  /** Skip this many matches (unstable under writes; prefer `after`). */
  offset?: number;
  /** Keyset cursor: start after this (createdAt, id). */
  after?: { createdAt: string; id: string };
  status?: TaskState;
  processor?: string;
}

export interface ListPage {
  items: ViewTask[];
  /** Matches in all pages. */
  total: number;
  /** The last item's position, when more follow. */
  last?: { createdAt: string; id: string };
}

const before = (a: ViewTask, b: { createdAt: string; id: string }): boolean =>
  a.def.createdAt < b.createdAt || (a.def.createdAt === b.createdAt && a.def.id < b.id);

/**
 * One `taskapi` instance's picture of the world: every task definition from `taskmanager.tasks` under the topic's
 * write rules (shared/tasks/task-log.ts), ordered by (createdAt, id) for stable pages, and every schedule's recent
 * runs folded from `taskmanager.events`. Pure: records come in through `onTaskRecord` and `onEventRecord`.
 */
export class TaskView {
  private readonly keys = new Map<string, KeyState>();
  private readonly tasks = new Map<string, ViewTask>();
  /** Sorted by (createdAt, id) once `seal()` was called; until then built unsorted and sorted once. */
  private ordered: ViewTask[] = [];
  private sealed = false;
  readonly runs = new RunHistory();
  private readonly byState = new Map<TaskState, number>();
  private readonly byProcessor = new Map<string, number>();
  /** Keys whose last record was rejected: their writer must append a repair (see task-log.ts). */
  readonly unrepaired = new Set<string>();

  constructor(
    private readonly logger: Logger,
    /** Told every record's outcome (the writer of a record waits for it: read-your-writes). */
    private readonly onOutcome: (r: InRecord, outcome: TaskLogOutcome) => void = () => undefined,
  ) {}

  get size(): number {
    return this.tasks.size;
  }

  /** Every task, in no particular order. */
  all(): IterableIterator<ViewTask> {
    return this.tasks.values();
  }

  get(id: string): ViewTask | undefined {
    return this.tasks.get(id);
  }

  keyState(id: string): KeyState | undefined {
    return this.keys.get(id);
  }

  latestRun(id: string): TaskRun | undefined {
    return this.runs.latest(id);
  }

  /** Sorts what was read so far; from now on every change keeps the order. */
  seal(): void {
    this.ordered = [...this.tasks.values()].sort((a, b) => (before(a, b.def) ? -1 : 1));
    this.sealed = true;
  }

  onTaskRecord(r: InRecord): void {
    const read = readTaskRecord(r, this.logger);
    if (!read) return;
    const { id, def } = read;
    const prev = this.keys.get(id);
    const outcome = foldTaskRecord(prev, r);
    if (outcome.kind === 'rejected') this.unrepaired.add(id);
    else this.unrepaired.delete(id);
    const next = nextKeyState(prev, outcome);
    if (next) this.keys.set(id, next);
    if (outcome.kind === 'put' && def) this.put(def, outcome.version);
    else if (outcome.kind === 'delete') this.remove(id);
    this.onOutcome(r, outcome);
  }

  /** Folds a status event into run history and task states; returns it (undefined for any other record). */
  onEventRecord(r: InRecord): StatusEvent | undefined {
    const e = parseStatusEvent(r.value);
    if (!e) return undefined;
    const id = this.runs.fold(e);
    const t = id === undefined ? undefined : this.tasks.get(id);
    if (!t) return e;
    this.counted(t, -1);
    t.state = stateOf(t.def, this.runs.latest(t.def.id));
    this.counted(t, 1);
    return e;
  }

  /**
   * One page: from the cursor on, the first `limit` matches. `total` comes from counters kept as tasks change, so a
   * page costs what it returns, not the size of the view (only both filters at once count by scanning).
   */
  list(q: ListQuery): ListPage {
    const matches = (t: ViewTask) =>
      (q.status === undefined || t.state === q.status) &&
      (q.processor === undefined || t.processor === q.processor);
    let i = 0;
    if (q.after) {
      const after = q.after;
      i = this.lowerBound(
        (t) => before(t, after) || (t.def.createdAt === after.createdAt && t.def.id === after.id),
      );
    }
    const items: ViewTask[] = [];
    let skip = q.offset ?? 0;
    let more = false;
    for (; i < this.ordered.length; i++) {
      const t = this.ordered[i]!;
      if (!matches(t)) continue;
      if (skip > 0) skip--;
      else if (items.length < q.limit) items.push(t);
      else {
        more = true;
        break;
      }
    }
    const last = items.at(-1);
    return {
      items,
      total: this.count(q, matches),
      ...(more && last ? { last: { createdAt: last.def.createdAt, id: last.def.id } } : {}),
    };
  }

  private count(q: ListQuery, matches: (t: ViewTask) => boolean): number {
    if (q.status !== undefined && q.processor !== undefined) {
      let n = 0;
      for (const t of this.ordered) if (matches(t)) n++;
      return n;
    }
    if (q.status !== undefined) return this.byState.get(q.status) ?? 0;
    if (q.processor !== undefined) return this.byProcessor.get(q.processor) ?? 0;
    return this.tasks.size;
  }

  /** Keeps the per-status and per-processor counters: `sign` +1 when a task enters, -1 when it leaves. */
  private counted(t: ViewTask, sign: 1 | -1): void {
    this.byState.set(t.state, (this.byState.get(t.state) ?? 0) + sign);
    this.byProcessor.set(t.processor, (this.byProcessor.get(t.processor) ?? 0) + sign);
    if (this.byProcessor.get(t.processor) === 0) this.byProcessor.delete(t.processor);
  }

  private put(def: TaskDefinition, version: string): void {
    const existing = this.tasks.get(def.id);
    const t: ViewTask = {
      def,
      version,
      state: stateOf(def, this.runs.latest(def.id)),
      processor: def.processor,
    };
    if (existing) this.counted(existing, -1);
    this.counted(t, 1);
    if (existing && this.sealed) {
      const at = this.indexOf(existing);
      if (existing.def.createdAt === def.createdAt) this.ordered[at] = t;
      else {
        this.ordered.splice(at, 1);
        this.insert(t);
      }
    } else if (this.sealed) this.insert(t);
    this.tasks.set(def.id, t);
  }

  private remove(id: string): void {
    const existing = this.tasks.get(id);
    if (!existing) return;
    this.tasks.delete(id);
    this.counted(existing, -1);
    // A task created again under the same id starts with no history, on every instance alike.
    this.runs.forget(id);
    if (this.sealed) this.ordered.splice(this.indexOf(existing), 1);
  }

  private insert(t: ViewTask): void {
    this.ordered.splice(
      this.lowerBound((x) => before(x, t.def)),
      0,
      t,
    );
  }

  private indexOf(t: ViewTask): number {
    return this.lowerBound((x) => before(x, t.def));
  }

  /** First index whose element does not satisfy `isBefore` (which holds for a prefix of the order). */
  private lowerBound(isBefore: (t: ViewTask) => boolean): number {
    let lo = 0;
    let hi = this.ordered.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (isBefore(this.ordered[mid]!)) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
