import type { CompiledSchedule } from './compiled.js';

/**
 * Exclusion calendars (Quartz's HolidayCalendar): a named list of dates and inclusive date ranges on which a schedule
 * does not fire. A date is a civil date, read in the zone of the schedule that names the calendar: one `holidays`
 * calendar serves schedules in Berlin and in New York, each skipping its own local 25 December. An instant whose
 * local date a calendar of its schedule holds is not an instant of the schedule at all: it is not fired, not caught
 * up, not previewed.
 */

/** A calendar's name: a Kafka key and a URL segment. */
export const CALENDAR_NAME_PATTERN = '^[A-Za-z0-9._-]{1,100}$';
const NAME_RE = new RegExp(CALENDAR_NAME_PATTERN);
/** Dates (or ranges) one calendar holds at most. */
export const MAX_CALENDAR_DATES = 10_000;
/** Calendars one schedule names at most. */
export const MAX_SCHEDULE_CALENDARS = 20;
/**
 * Excluded instants the search for a schedule's next instant steps over before it gives up: each step passes a whole
 * excluded date or range, so only a schedule whose next 1000 instants fall on distinct excluded dates (a yearly spec
 * on a date excluded year after year, say) reaches it. It then has no next instant, as a schedule past its end.
 */
export const MAX_EXCLUDED_SKIPS = 1000;

/** The JSON schema of a calendar's `dates`. */
export const CALENDAR_DATES_SCHEMA = {
  type: 'array',
  maxItems: MAX_CALENDAR_DATES,
  items: { type: 'string' },
  description:
    'Dates (2026-12-25) and inclusive ranges (2026-12-24/2026-12-26), in the zone of each schedule that names the calendar',
  examples: [['2026-12-25', '2026-12-31/2027-01-01']],
} as const;

/** The JSON schema of a schedule's `calendars` option. */
export const CALENDARS_OPTION_SCHEMA = {
  type: 'array',
  maxItems: MAX_SCHEDULE_CALENDARS,
  uniqueItems: true,
  items: { type: 'string', pattern: CALENDAR_NAME_PATTERN },
  description:
    'Exclusion calendars by name: no fire on a date any of them holds, in timeZone (docs/schedule-file.md#exclusion-calendars)',
  examples: [['holidays']],
} as const;

export function isCalendarName(name: string): boolean {
  return NAME_RE.test(name);
}

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const DAY_MS = 86_400_000;

/** Days since 1970-01-01 of a civil date `YYYY-MM-DD`, or undefined when it is not a real date. */
export function dayNumber(text: string): number | undefined {
  const m = DATE_RE.exec(text);
  if (!m) return undefined;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const ms = Date.UTC(y, mo - 1, d);
  const back = new Date(ms);
  // Date.UTC rolls 2026-02-30 over to March, and years below 100 to the 1900s.
  if (back.getUTCFullYear() !== y || back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d)
    return undefined;
  return ms / DAY_MS;
}

/** The civil date of a day number, `YYYY-MM-DD`. */
export function dayText(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** One item of a calendar's dates as days: `[first, last]`, or why it is not a date nor a range. */
export function parseDateItem(item: string): [number, number] | string {
  const parts = item.split('/');
  if (parts.length > 2) return 'is not a date (2026-12-25) nor a range (2026-12-24/2026-12-26)';
  const days = parts.map(dayNumber);
  const [first, last = first] = days;
  if (first === undefined || last === undefined)
    return 'is not a date (2026-12-25) nor a range (2026-12-24/2026-12-26)';
  if (last < first) return 'ends before it starts';
  return [first, last];
}

/** What is wrong with a calendar's dates: the index and value of each bad item, and why. */
export function calendarDateProblems(
  dates: readonly unknown[],
): Array<{ index: number; value: unknown; reason: string }> {
  const out: Array<{ index: number; value: unknown; reason: string }> = [];
  dates.forEach((value, index) => {
    const parsed = typeof value === 'string' ? parseDateItem(value) : 'must be a string';
    if (typeof parsed === 'string') out.push({ index, value, reason: parsed });
  });
  return out;
}

/** A calendar as schedules use it: its name and dates (as written). */
export interface Calendar {
  readonly name: string;
  readonly dates: readonly string[];
}

/**
 * The dates a schedule's calendars exclude, as sorted, merged, inclusive day ranges (`ranges`: first, last, first,
 * last, …; days since 1970-01-01). A plain object, so that an entry holding it compares (and hashes) by content: a
 * calendar edit changes the entries that name it.
 */
export interface ExcludedDays {
  readonly names: readonly string[];
  readonly ranges: readonly number[];
}

/** The excluded days of `calendars` (each item valid: checked before). */
export function excludedDaysOf(calendars: readonly Calendar[]): ExcludedDays {
  const spans: Array<[number, number]> = [];
  for (const c of calendars)
    for (const item of c.dates) {
      const parsed = parseDateItem(item);
      if (typeof parsed !== 'string') spans.push(parsed);
    }
  spans.sort((a, b) => a[0] - b[0]);
  const ranges: number[] = [];
  for (const [first, last] of spans) {
    const end = ranges.length - 1;
    // Overlapping or adjacent (the next day): one range.
    if (end > 0 && first <= (ranges[end] ?? -Infinity) + 1) ranges[end] = Math.max(ranges[end] ?? last, last);
    else ranges.push(first, last);
  }
  return { names: calendars.map((c) => c.name), ranges };
}

/** The last day of the excluded range holding `day`, or undefined when `day` is not excluded. */
export function excludedUntil(days: ExcludedDays, day: number): number | undefined {
  const r = days.ranges;
  // Binary search over the ranges' first days: the last range starting at or before `day`.
  let lo = 0;
  let hi = r.length / 2 - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if ((r[mid * 2] ?? Infinity) <= day) {
      found = mid;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  if (found < 0) return undefined;
  const last = r[found * 2 + 1] ?? -Infinity;
  return day <= last ? last : undefined;
}

const dateFormats = new Map<string, Intl.DateTimeFormat>();

/** The civil date (as a day number) of instant `ms` in `zone`. */
export function localDay(ms: number, zone: string): number {
  let f = dateFormats.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
    });
    if (dateFormats.size < 10_000) dateFormats.set(zone, f);
  }
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(ms)))
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  return Date.UTC(p.year ?? 1970, (p.month ?? 1) - 1, p.day ?? 1) / DAY_MS;
}

/**
 * The first instant of civil date `day` in `zone` (local midnight, or the end of a DST gap that swallowed it). Every
 * offset is within ±15 h of UTC, and a local date only moves forward with time: a binary search, to the second
 * (offsets are whole seconds), of the first instant whose local date is `day` or later.
 */
export function dayStart(day: number, zone: string): number {
  let lo = Math.floor((day * DAY_MS - 15 * 3_600_000) / 1000);
  let hi = Math.ceil((day * DAY_MS + 15 * 3_600_000) / 1000);
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (localDay(mid * 1000, zone) >= day) hi = mid;
    else lo = mid;
  }
  return hi * 1000;
}

/**
 * `schedule` without the instants whose local date (in its zone) `days` excludes. An excluded instant is stepped
 * over with the whole range it falls in (to the first instant of the day after it), so a schedule firing every
 * second skips an excluded day in a step or two; after {@link MAX_EXCLUDED_SKIPS} excluded instants in a row it
 * has no next instant.
 */
export function excluding(schedule: CompiledSchedule, days: ExcludedDays | undefined): CompiledSchedule {
  if (days === undefined || days.ranges.length === 0) return schedule;
  const { zone } = schedule;
  return {
    spec: schedule.spec,
    zone,
    nextAfter: (after) => {
      let t = schedule.nextAfter(after);
      for (let skipped = 0; t !== undefined; skipped++) {
        const until = excludedUntil(days, localDay(t, zone));
        if (until === undefined) return t;
        if (skipped >= MAX_EXCLUDED_SKIPS) return undefined;
        t = schedule.nextAfter(Math.max(t, dayStart(until + 1, zone) - 1));
      }
      return undefined;
    },
  };
}

/** Whether instant `ms` falls, in `zone`, on a date `days` excludes. */
export function isExcluded(days: ExcludedDays | undefined, ms: number, zone: string): boolean {
  return days !== undefined && excludedUntil(days, localDay(ms, zone)) !== undefined;
}
