import { fileKey, MAX_EVERY_TEXT, MIN_EVERY_TEXT, SCHEDULE_KINDS } from './model.js';
import type { ScheduleKind, ScheduleProblem } from './model.js';

/**
 * The words of every schedule problem, for each door a schedule comes through: the schedule file (PascalCase keys,
 * `Every: "5 s" is not …`), a `taskmanager.tasks` record (one line, `schedule.every "5 s" is not …`) and an HTTP
 * body (a JSON pointer and a detail, `/schedule/every` `is not …`).
 */
export type Door = 'file' | 'record' | 'http';

/** The file lists Cron first: the old Go tool had only it. */
const FILE_KIND_ORDER: readonly ScheduleKind[] = ['cron', ...SCHEDULE_KINDS.filter((k) => k !== 'cron')];

/** `a, b or c` (or `and`). */
function listed(items: readonly string[], last: 'or' | 'and'): string {
  return items.length < 2 ? items.join('') : `${items.slice(0, -1).join(', ')} ${last} ${items.at(-1) ?? ''}`;
}

/** What each rule says, without the value it is about. */
function phrase(p: ScheduleProblem): string {
  switch (p.rule) {
    case 'not-object':
      return `must be an object with exactly one of ${SCHEDULE_KINDS.join(', ')}`;
    case 'unknown-field':
      return `is not a known field (${listed(SCHEDULE_KINDS, 'or')})`;
    case 'type':
      return p.kind === 'every' ? 'must be a string like 5s or an integer of ms' : 'must be string';
    case 'kinds':
      return `must have exactly one of ${SCHEDULE_KINDS.join(', ')}${p.kinds.length > 1 ? ` (has ${p.kinds.join(', ')})` : ''}`;
    case 'cron':
      return p.reason;
    case 'runAt':
      return 'is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)';
    case 'every-format':
      return 'is not a duration like 5s, 1m30s, 2h or 1500 (ms)';
    case 'every-min':
      return `is below the minimum of ${MIN_EVERY_TEXT}`;
    case 'every-max':
      return `is above the maximum of ${MAX_EVERY_TEXT}`;
    case 'timeZone':
      return 'is not an IANA time zone';
    case 'startAt':
    case 'endAt':
      return 'is not an RFC 3339 date-time with an offset (e.g. 2026-12-01T09:00:00Z)';
    case 'window':
      return `is before the start (${p.startAt}): the schedule would never fire`;
  }
}

/**
 * Wordings a door had before the three validators became one, kept word for word because clients and tests
 * match on them. Only these differ between doors; a new rule has its phrase above and nothing here.
 */
const KEPT: {
  readonly [D in Door]?: { readonly [R in ScheduleProblem['rule']]?: (p: ScheduleProblem) => string };
} = {
  file: {
    kinds: (p) => {
      const kinds = FILE_KIND_ORDER.filter((k) => p.rule === 'kinds' && p.kinds.includes(k)).map(fileKey);
      const all = listed(FILE_KIND_ORDER.map(fileKey), 'and');
      return `needs exactly one of ${all} (it has ${kinds.length === 0 ? 'none' : kinds.join(' and ')})`;
    },
  },
  record: { runAt: () => 'is not RFC 3339', timeZone: () => 'is not an IANA zone' },
  http: {
    runAt: () => 'is not an RFC 3339 instant like 2026-12-01T09:00:00Z',
    'every-min': () => `is below the minimum interval of ${MIN_EVERY_TEXT}`,
  },
};

/** The field a problem is about, as path segments: `['schedule', 'every']`, `['timeZone']`. */
function segments(p: ScheduleProblem): string[] {
  switch (p.rule) {
    case 'not-object':
    case 'kinds':
      return ['schedule'];
    case 'unknown-field':
      return ['schedule', p.name];
    case 'type':
      return ['schedule', p.kind];
    case 'every-format':
    case 'every-min':
    case 'every-max':
      return ['schedule', 'every'];
    case 'timeZone':
    case 'startAt':
    case 'endAt':
      return [p.rule];
    case 'window':
      return ['endAt'];
    default:
      return ['schedule', p.rule];
  }
}

/** Where the problem is: the file's key (`Every`), the record's path (`schedule.every`), a JSON pointer. */
export function problemPath(p: ScheduleProblem, door: Door): string {
  const at = segments(p);
  if (door === 'http') return `/${at.join('/')}`;
  if (door === 'record') return at.join('.');
  // The file has no `schedule` object: its kinds are fields of the entry.
  if (p.rule !== 'kinds') return fileKey(at.at(-1) ?? '');
  const kinds = FILE_KIND_ORDER.filter((k) => p.kinds.includes(k)).map(fileKey);
  return kinds.length === 0 ? 'Cron' : kinds.join(', ');
}

/**
 * What is wrong: the value, when the rule is about one, then the phrase (after a colon for the cron parser's
 * reason). An HTTP detail leaves the value out, the pointer naming the field (the zone's kept wording has it).
 */
export function problemText(p: ScheduleProblem, door: Door): string {
  const text = KEPT[door]?.[p.rule]?.(p) ?? phrase(p);
  if (!('value' in p) || (door === 'http' && p.rule !== 'timeZone')) return text;
  return `${JSON.stringify(p.value)}${p.rule === 'cron' ? ':' : ''} ${text}`;
}

/** The problem on one line, as a record's reader logs it: `schedule.every "500ms" is below the minimum of 1s`. */
export function problemLine(p: ScheduleProblem, door: Door): string {
  return `${problemPath(p, door)} ${problemText(p, door)}`;
}
