import { parseAuditEvent } from '../shared/codecs/task-event.js';
import type { AnyAuditEvent } from '../shared/codecs/task-event.js';
import type { InRecord } from '../shared/kafka/index.js';

/** How many audit entries a taskapi keeps in memory unless `--audit-keep` says otherwise. */
export const DEFAULT_AUDIT_KEEP = 10_000;

/**
 * One audit event as the view keeps and shows it: the event as written (but `v` and `kind`), where it is in
 * `taskmanager.audit`, and the scheduler group of its task or schedule when known.
 */
export type AuditItem = Omit<AnyAuditEvent, 'v' | 'kind'> & {
  /** `<partition>@<offset>` in taskmanager.audit. */
  position: string;
  group?: string;
  [field: string]: unknown;
};

interface Entry {
  item: AuditItem;
  atMs: number;
  partition: number;
  offset: bigint;
  /** The per-subject list it is in: `task:<id>` (a task's or a schedule's id) or `calendar:<name>`. */
  subject?: string;
}

export interface AuditQuery {
  limit: number;
  /** A task's or a schedule's id: its own events and the DLQ replays of its runs. */
  task?: string;
  calendar?: string;
  group?: string;
  /** A user name: their events, with or without an API token. */
  actor?: string;
  /** An action (`task.changed`), or the part before its dot (`schedule`). */
  action?: string;
  /** ms since the epoch: only events at or after it. */
  since?: number;
  /** The key of the last entry of the previous page (see {@link AuditPage.next}). */
  after?: { atMs: number; position: string };
}

export interface AuditPage {
  items: AuditItem[];
  /** Entries matching the filters, in all pages (of those kept). */
  total: number;
  /** The sort key of the last item, when more pages follow. */
  next?: { atMs: number; position: string };
}

/** The subject an event is about, as its per-subject list is named. */
function subjectOf(e: AnyAuditEvent): string | undefined {
  if ('task' in e && typeof e.task === 'string') return `task:${e.task}`;
  if ('schedule' in e && typeof e.schedule === 'string') return `task:${e.schedule}`;
  if ('calendar' in e && typeof e.calendar === 'string') return `calendar:${e.calendar}`;
  return undefined;
}

function positionOf(partition: number, offset: bigint): string {
  return `${partition}@${offset}`;
}

/** Sort order: time, then partition, then offset (a total order, stable across reads of the topic). */
function compare(a: Entry, b: { atMs: number; partition: number; offset: bigint }): number {
  if (a.atMs !== b.atMs) return a.atMs - b.atMs;
  if (a.partition !== b.partition) return a.partition - b.partition;
  return a.offset < b.offset ? -1 : a.offset > b.offset ? 1 : 0;
}

/** Index of the first entry of `list` (sorted) that sorts after `key`. */
function insertionPoint(list: readonly Entry[], key: Entry): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(list[mid]!, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The cursor key as an entry-like key, or undefined when its position is no `<partition>@<offset>`. */
function keyOf(after: { atMs: number; position: string }): Entry | undefined {
  const m = /^(\d{1,9})@(\d{1,19})$/.exec(after.position);
  if (!m) return undefined;
  return { atMs: after.atMs, partition: Number(m[1]), offset: BigInt(m[2]!) } as Entry;
}

function matches(e: Entry, q: AuditQuery): boolean {
  const { item } = e;
  if (q.since !== undefined && e.atMs < q.since) return false;
  if (q.group !== undefined && item.group !== q.group) return false;
  if (q.actor !== undefined && item.user !== q.actor && !item.user.startsWith(`${q.actor} (token `))
    return false;
  if (q.action !== undefined && item.action !== q.action && !item.action.startsWith(`${q.action}.`))
    return false;
  return true;
}

/**
 * The newest audit events of `taskmanager.audit`, at most `keep` of them, sorted by time: the oldest is dropped
 * when a newer one comes in over the bound (and an event older than all kept ones, once full, is not kept). Each
 * task, schedule and calendar also has the list of its own kept events, so its page never walks the rest.
 * `groupOf` names the group of a task whose event was written without one (events written before they had it).
 */
export class AuditView {
  private readonly all: Entry[] = [];
  private readonly bySubject = new Map<string, Entry[]>();
  private readonly positions = new Set<string>();
  /** Records of the topic that were no audit event (skipped). */
  skipped = 0;

  constructor(
    readonly keep: number = DEFAULT_AUDIT_KEEP,
    private readonly groupOf: (id: string) => string | undefined = () => undefined,
  ) {}

  get size(): number {
    return this.all.length;
  }

  /** The time of the oldest entry kept, when any. */
  get oldest(): string | undefined {
    return this.all[0]?.item.at;
  }

  add(r: InRecord): void {
    const offset = BigInt(r.offset);
    const position = positionOf(r.partition, offset);
    if (this.positions.has(position)) return; // read twice (a follower's restart)
    const event = parseAuditEvent(r.value);
    const atMs = event ? Date.parse(event.at) : NaN;
    if (!event || Number.isNaN(atMs)) {
      this.skipped++;
      return;
    }
    const { v: _v, kind: _kind, ...fields } = event;
    const subject = subjectOf(event);
    const id = subject?.startsWith('task:') ? subject.slice('task:'.length) : undefined;
    const group = 'group' in event && typeof event.group === 'string' ? event.group : id && this.groupOf(id);
    const entry: Entry = {
      item: { ...fields, position, ...(group ? { group } : {}) } as AuditItem,
      atMs,
      partition: r.partition,
      offset,
      ...(subject ? { subject } : {}),
    };
    const at = insertionPoint(this.all, entry);
    if (at === 0 && this.all.length >= this.keep) return; // older than everything kept, and full
    this.all.splice(at, 0, entry);
    this.positions.add(position);
    if (subject) {
      let list = this.bySubject.get(subject);
      if (!list) this.bySubject.set(subject, (list = []));
      list.splice(insertionPoint(list, entry), 0, entry);
    }
    while (this.all.length > this.keep) this.drop(this.all.shift()!);
  }

  /** Newest first, `limit` at a time, from after the cursor on. */
  page(q: AuditQuery): AuditPage {
    const from =
      q.task !== undefined
        ? this.bySubject.get(`task:${q.task}`)
        : q.calendar !== undefined
          ? this.bySubject.get(`calendar:${q.calendar}`)
          : this.all;
    const list = from ?? [];
    const after = q.after && keyOf(q.after);
    const items: AuditItem[] = [];
    let total = 0;
    let last: Entry | undefined;
    let more = false;
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!;
      if (!matches(e, q)) continue;
      total++;
      if (q.after && (!after || compare(e, after) >= 0)) continue;
      if (items.length < q.limit) {
        items.push(e.item);
        last = e;
      } else more = true;
    }
    return {
      items,
      total,
      ...(more && last ? { next: { atMs: last.atMs, position: last.item.position } } : {}),
    };
  }

  private drop(e: Entry): void {
    this.positions.delete(e.item.position);
    if (!e.subject) return;
    const list = this.bySubject.get(e.subject);
    if (!list) return;
    const i = list.indexOf(e);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.bySubject.delete(e.subject);
  }
}
