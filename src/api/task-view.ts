import { AppError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { InRecord } from '../shared/kafka/index.js';
import { parseStatusEvents } from '../shared/codecs/task-event.js';
import type { StatusEvent } from '../shared/codecs/task-event.js';
import { readTaskRecord } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { foldTaskRecord } from '../shared/tasks/task-log.js';
import type { KeyState, TaskLogOutcome } from '../shared/tasks/task-log.js';
import { RunHistory } from './run-history.js';
import type { TaskRun } from './run-history.js';
import { stateOf } from './task-model.js';
import type { TaskState } from './task-model.js';
import { MemoryTaskDefs } from './task-defs.js';
import type { IndexFields, TaskDefs } from './task-defs.js';

/** A task in the view: its definition (read from the store), version, and its status kept current as events arrive. */
export interface ViewTask {
  def: TaskDefinition;
  version: string;
  state: TaskState;
  processor: string;
}

/** What the view holds in memory of a task: what lists, filters and pages need, no definition. */
export interface IndexedTask extends IndexFields {
  id: string;
  state: TaskState;
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

const before = (a: IndexedTask, b: { createdAt: string; id: string }): boolean =>
  a.createdAt < b.createdAt || (a.createdAt === b.createdAt && a.id < b.id);

/**
 * One `taskapi` instance's picture of the world: every task of `taskmanager.tasks` under the topic's write rules
 * (shared/tasks/task-log.ts), ordered by (createdAt, id) for stable pages, and every schedule's recent runs folded
 * from `taskmanager.events`. In memory only a compact index ({@link IndexedTask}); the definitions, payloads
 * included, are in a {@link TaskDefs} store, with the offsets folded so far. Records come in through
 * `onTaskRecord` and `onEventRecord`.
 */
export class TaskView {
  private readonly tasks = new Map<string, IndexedTask>();
  /** Sorted by (createdAt, id) once `seal()` was called; until then built unsorted and sorted once. */
  private ordered: IndexedTask[] = [];
  private sealed = false;
  readonly runs = new RunHistory();
  private readonly byState = new Map<TaskState, number>();
  private readonly byProcessor = new Map<string, number>();
  /** Group and processor names, one string each however many tasks share them. */
  private readonly names = new Map<string, string>();
  /** Keys whose last record was rejected: their writer must append a repair (see task-log.ts). */
  readonly unrepaired = new Set<string>();
  /** Records of taskmanager.tasks folded by this view (those its store had at start not counted). */
  recordsRead = 0;

  constructor(
    private readonly logger: Logger,
    /** Told every record's outcome (the writer of a record waits for it: read-your-writes). */
    private readonly onOutcome: (r: InRecord, outcome: TaskLogOutcome) => void = () => undefined,
    /** Where the definitions are; the index is loaded from what it holds. */
    readonly defs: TaskDefs = new MemoryTaskDefs(),
  ) {
    for (const [id, fields] of defs.indexed()) this.index(id, fields);
    for (const id of defs.unrepairedKeys()) this.unrepaired.add(id);
  }

  get size(): number {
    return this.tasks.size;
  }

  /** Every task's index entry, in no particular order. */
  entries(): IterableIterator<IndexedTask> {
    return this.tasks.values();
  }

  /** The index entry of a task (no definition read). */
  entry(id: string): IndexedTask | undefined {
    return this.tasks.get(id);
  }

  /** The task with its definition, read from the store. */
  get(id: string): ViewTask | undefined {
    const t = this.tasks.get(id);
    return t && this.withDefinition(t);
  }

  keyState(id: string): KeyState | undefined {
    const t = this.tasks.get(id);
    if (t) return { version: t.version, present: true };
    const deleted = this.defs.deletedVersion(id);
    return deleted === undefined ? undefined : { version: deleted, present: false };
  }

  latestRun(id: string): TaskRun | undefined {
    return this.runs.latest(id);
  }

  /** Sorts what was read so far; from now on every change keeps the order. */
  seal(): void {
    this.ordered = [...this.tasks.values()].sort((a, b) => (before(a, b) ? -1 : 1));
    this.sealed = true;
  }

  onTaskRecord(r: InRecord): void {
    this.recordsRead++;
    try {
      this.fold(r);
    } finally {
      this.defs.applied(r.partition, r.offset);
    }
  }

  /**
   * Folds the status events of a record (one, or a batch of SCHEDULED) into run history and task states; returns
   * them (none for any other record).
   */
  onEventRecord(r: InRecord): StatusEvent[] {
    // Audit events of earlier releases (one per change over HTTP: a million creates were a million of them) carry
    // no status header: skipped without parsing.
    const events = parseStatusEvents(r.value, r.headers);
    for (const e of events) {
      const id = this.runs.fold(e);
      const t = id === undefined ? undefined : this.tasks.get(id);
      if (!t) continue;
      this.counted(t, -1);
      t.state = stateOf(t, this.runs.latest(t.id));
      this.counted(t, 1);
    }
    return events;
  }

  /**
   * One page: from the cursor on, the first `limit` matches, their definitions read from the store. `total` comes
   * from counters kept as tasks change, so a page costs what it returns, not the size of the view (only both
   * filters at once count by scanning the index).
   */
  list(q: ListQuery): ListPage {
    const matches = (t: IndexedTask) =>
      (q.status === undefined || t.state === q.status) &&
      (q.processor === undefined || t.processor === q.processor);
    let i = 0;
    if (q.after) {
      const after = q.after;
      i = this.lowerBound((t) => before(t, after) || (t.createdAt === after.createdAt && t.id === after.id));
    }
    const items: IndexedTask[] = [];
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
      items: items.map((t) => this.withDefinition(t)),
      total: this.count(q, matches),
      ...(more && last ? { last: { createdAt: last.createdAt, id: last.id } } : {}),
    };
  }

  private fold(r: InRecord): void {
    const read = readTaskRecord(r, this.logger);
    if (!read) return;
    const { id, def } = read;
    const outcome = foldTaskRecord(this.keyState(id), r);
    const rejected = outcome.kind === 'rejected';
    if (rejected !== this.unrepaired.has(id)) {
      if (rejected) this.unrepaired.add(id);
      else this.unrepaired.delete(id);
      this.defs.markUnrepaired(id, rejected);
    }
    if (outcome.kind === 'put' && def && r.value) this.put(def, outcome.version, r.value);
    else if (outcome.kind === 'delete') this.remove(id, outcome.version, Number(r.timestamp));
    this.onOutcome(r, outcome);
  }

  private withDefinition(t: IndexedTask): ViewTask {
    const value = this.defs.definition(t.id);
    let def: TaskDefinition | undefined;
    try {
      def = value && (JSON.parse(value.toString('utf8')) as TaskDefinition);
    } catch {
      def = undefined;
    }
    if (def?.id !== t.id)
      throw new AppError(
        'DECODE_ERROR',
        `task store ${this.defs.where}: the definition of task ${t.id} is ${value ? 'unreadable' : 'missing'}; stop taskapi and delete the store to rebuild it from taskmanager.tasks`,
      );
    return { def, version: t.version, state: t.state, processor: t.processor };
  }

  private count(q: ListQuery, matches: (t: IndexedTask) => boolean): number {
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
  private counted(t: IndexedTask, sign: 1 | -1): void {
    this.byState.set(t.state, (this.byState.get(t.state) ?? 0) + sign);
    this.byProcessor.set(t.processor, (this.byProcessor.get(t.processor) ?? 0) + sign);
    if (this.byProcessor.get(t.processor) === 0) this.byProcessor.delete(t.processor);
  }

  private put(def: TaskDefinition, version: string, value: Buffer): void {
    const fields: IndexFields = {
      version,
      createdAt: def.createdAt,
      group: def.group,
      processor: def.processor,
      enabled: def.enabled,
    };
    this.defs.put(def.id, fields, value);
    this.index(def.id, fields);
  }

  /** Puts a task in the index (and in the order once sealed). */
  private index(id: string, fields: IndexFields): void {
    const existing = this.tasks.get(id);
    const t: IndexedTask = {
      id,
      version: fields.version,
      createdAt: fields.createdAt,
      group: this.name(fields.group),
      processor: this.name(fields.processor),
      enabled: fields.enabled,
      state: 'SCHEDULED',
    };
    t.state = stateOf(t, this.runs.latest(id));
    if (existing) this.counted(existing, -1);
    this.counted(t, 1);
    if (existing && this.sealed) {
      const at = this.indexOf(existing);
      if (existing.createdAt === t.createdAt) this.ordered[at] = t;
      else {
        this.ordered.splice(at, 1);
        this.insert(t);
      }
    } else if (this.sealed) this.insert(t);
    this.tasks.set(id, t);
  }

  private name(s: string): string {
    const known = this.names.get(s);
    if (known !== undefined) return known;
    this.names.set(s, s);
    return s;
  }

  private remove(id: string, version: string, atMs: number): void {
    this.defs.remove(id, version, atMs);
    const existing = this.tasks.get(id);
    if (!existing) return;
    this.tasks.delete(id);
    this.counted(existing, -1);
    // A task created again under the same id starts with no history, on every instance alike.
    this.runs.forget(id);
    if (this.sealed) this.ordered.splice(this.indexOf(existing), 1);
  }

  private insert(t: IndexedTask): void {
    this.ordered.splice(
      this.lowerBound((x) => before(x, t)),
      0,
      t,
    );
  }

  private indexOf(t: IndexedTask): number {
    return this.lowerBound((x) => before(x, t));
  }

  /** First index whose element does not satisfy `isBefore` (which holds for a prefix of the order). */
  private lowerBound(isBefore: (t: IndexedTask) => boolean): number {
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
