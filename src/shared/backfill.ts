import { parseRfc3339 } from './rfc3339.js';

/**
 * Backfill (docs/operations.md#backfill): the instants of a schedule in a past range that have no task yet, published
 * by the instance that owns the schedule. What `taskscheduler backfill`, taskapi and the owner agree on: the range
 * and its checks, and the result.
 */

/** Instants a request may span unless it raises its cap (`--max`, `max`). */
export const BACKFILL_DEFAULT_MAX = 1000;
/** The highest cap: a reply lists every instant of the range, and must stay one record well under 1 MiB. */
export const BACKFILL_MAX_CEILING = 10_000;

/** What to backfill: instants from `from` to `to` (RFC 3339, both included), at most `max` of them. */
export interface BackfillRange {
  from: string;
  to: string;
  /** The most instants the range may hold. @default 1000 */
  max?: number;
  /** List what would be published, publish nothing. */
  dryRun?: boolean;
}

/** The owner's answer: the instants of the range (ISO, UTC), oldest first, by what became of them. */
export interface BackfillResult {
  /** The topic the tasks go to (the schedule's). */
  topic: string;
  dryRun: boolean;
  /** Instants without a task, published now (with `dryRun`, that would be). */
  published: string[];
  /** Instants that already had a task (fired, triggered at that instant, or backfilled before): left alone. */
  present: string[];
  /**
   * Instants after the last one the schedule has reached (a fire whose jitter delay has not ended, or one a
   * schedule at its MaxRuns never had): not backfilled; the schedule fires them itself when they are its to fire.
   */
  pending: string[];
  /**
   * Set when some of `published` are older than the oldest record the task topic's partition still holds (written
   * at this instant): retention may have deleted their tasks, the check cannot tell (absent in older replies).
   */
  keptSince?: string;
}

/** A field of a range and what is wrong with it. */
export interface RangeProblem {
  field: 'from' | 'to' | 'max';
  detail: string;
}

const NOT_RFC3339 = 'is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)';

/** The checks of a range that need no schedule and no clock: two instants in order, a cap within the ceiling. */
export function rangeProblems(r: { from?: unknown; to?: unknown; max?: unknown }): RangeProblem[] {
  const out: RangeProblem[] = [];
  const at = (field: 'from' | 'to'): number | undefined => {
    const v = r[field];
    const ms = typeof v === 'string' ? parseRfc3339(v) : undefined;
    if (ms === undefined) out.push({ field, detail: `${JSON.stringify(v ?? null)} ${NOT_RFC3339}` });
    return ms;
  };
  const from = at('from');
  const to = at('to');
  if (from !== undefined && to !== undefined && to < from)
    out.push({ field: 'to', detail: `${String(r.to)} is before from (${String(r.from)})` });
  const max = r.max;
  const inRange = typeof max === 'number' && Number.isInteger(max) && max >= 1 && max <= BACKFILL_MAX_CEILING;
  if (max !== undefined && max !== null && !inRange)
    out.push({
      field: 'max',
      detail: `${JSON.stringify(max)} is not an integer from 1 to ${BACKFILL_MAX_CEILING}`,
    });
  return out;
}

/** A result with each instant of its lists as its taskId, `Id@instant` (what the CLI's --json and the API show). */
export function withTaskIds(scheduleId: string, b: BackfillResult): BackfillResult {
  const taskIds = (instants: readonly string[]): string[] => instants.map((at) => `${scheduleId}@${at}`);
  return {
    topic: b.topic,
    dryRun: b.dryRun,
    published: taskIds(b.published),
    present: taskIds(b.present),
    pending: taskIds(b.pending),
    ...(b.keptSince === undefined ? {} : { keptSince: b.keptSince }),
  };
}
