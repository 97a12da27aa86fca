import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import {
  calendarDateProblems,
  CALENDAR_DATES_SCHEMA,
  excludedDaysOf,
  isCalendarName,
} from '../schedule/calendar.js';
import type { ExcludedDays } from '../schedule/calendar.js';
import type { InRecord, OutRecord } from '../kafka/types.js';
import type { Logger } from '../logger.js';

/**
 * The compacted topic of the exclusion calendars tasks created over HTTP name (`/api/v1/calendars`): key = the
 * calendar's name, value = {@link CalendarRecord}, tombstone = deleted (docs/messages-and-topics.md#calendars).
 */
export const CALENDARS_TOPIC = 'taskmanager.calendars';

/** A calendar as stored in {@link CALENDARS_TOPIC}. */
export interface CalendarRecord {
  v: 1;
  name: string;
  /** Dates (`2026-12-25`) and inclusive ranges (`2026-12-24/2026-12-26`), in the zone of each schedule using it. */
  dates: string[];
  description?: string;
  updatedAt: string;
  /** Who made the last change (user name, with the API token id when one was used). */
  updatedBy?: string;
}

const recordSchema: JSONSchemaType<CalendarRecord> = {
  type: 'object',
  // Fields a later version adds are ignored, not refused: a reader keeps the dates it knows how to read.
  additionalProperties: true,
  required: ['v', 'name', 'dates', 'updatedAt'],
  properties: {
    v: { type: 'integer', const: 1 },
    name: { type: 'string' },
    dates: { type: 'array', items: { type: 'string' }, maxItems: CALENDAR_DATES_SCHEMA.maxItems },
    description: { type: 'string', nullable: true },
    updatedAt: { type: 'string' },
    updatedBy: { type: 'string', nullable: true },
  },
};
const validate = new Ajv({ strict: true }).compile(recordSchema);

/** A record's calendar, or why it cannot be used. */
export function parseCalendarRecord(value: Buffer): CalendarRecord | { problem: string } {
  let data: unknown;
  try {
    data = JSON.parse(value.toString('utf8'));
  } catch (err) {
    return { problem: `not JSON (${err instanceof Error ? err.message : String(err)})` };
  }
  if (!validate(data)) return { problem: new Ajv().errorsText(validate.errors) };
  if (!isCalendarName(data.name))
    return { problem: `name ${JSON.stringify(data.name)} is not a calendar name` };
  const [bad] = calendarDateProblems(data.dates);
  if (bad) return { problem: `dates[${bad.index}] ${JSON.stringify(bad.value)} ${bad.reason}` };
  return data;
}

/** The record of a calendar (key = its name). */
export function calendarRecord(c: CalendarRecord): OutRecord {
  return { topic: CALENDARS_TOPIC, key: c.name, value: Buffer.from(JSON.stringify(c)) };
}

/** What resolves a schedule's calendar names to the dates they exclude (undefined: no calendars). */
export type CalendarsOf = (names: readonly string[] | undefined) => ExcludedDays | undefined;

/**
 * The calendars of {@link CALENDARS_TOPIC}, folded in log order (the last record of a name wins; a tombstone deletes
 * it), and the excluded days of each set of names schedules use, made once per set and shared by every schedule
 * naming it. A name no record defines (deleted while a task still names it, or never written) excludes nothing: it
 * is logged once per name.
 */
export class CalendarBook {
  private readonly byName = new Map<string, CalendarRecord>();
  private readonly made = new Map<string, ExcludedDays>();
  private readonly warned = new Set<string>();
  /** Called with the name of each calendar that changed (created, changed, deleted). */
  onChange: (name: string) => void = () => undefined;

  constructor(private readonly logger: Logger) {}

  get size(): number {
    return this.byName.size;
  }

  get(name: string): CalendarRecord | undefined {
    return this.byName.get(name);
  }

  /** Every calendar, by name. */
  all(): CalendarRecord[] {
    return [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Applies one record of the topic: what it did (`same`: nothing changed; `ignored`: unusable). */
  fold(r: InRecord): 'changed' | 'deleted' | 'same' | 'ignored' {
    const where = `${CALENDARS_TOPIC}/${r.partition}@${r.offset}`;
    const name = r.key?.toString('utf8');
    if (!name) {
      this.logger.warn(`ignoring ${where}: no key (a calendar's key is its name)`);
      return 'ignored';
    }
    if (r.value === null) return this.byName.has(name) ? this.apply(name, undefined) : 'same';
    const parsed = parseCalendarRecord(r.value);
    if ('problem' in parsed) {
      this.logger.warn(`ignoring ${where} (calendar ${name}): ${parsed.problem}`);
      return 'ignored';
    }
    if (parsed.name !== name) {
      this.logger.warn(`ignoring ${where}: key ${JSON.stringify(name)} is not the calendar's name`);
      return 'ignored';
    }
    const prev = this.byName.get(name);
    if (prev && JSON.stringify(prev.dates) === JSON.stringify(parsed.dates)) {
      this.byName.set(name, parsed);
      return 'same';
    }
    return this.apply(name, parsed);
  }

  /** The dates `names` exclude together; undefined for no names. */
  readonly excludedOf: CalendarsOf = (names) => {
    if (names === undefined || names.length === 0) return undefined;
    const key = names.join('\u0000');
    let days = this.made.get(key);
    if (!days) {
      for (const n of names)
        if (!this.byName.has(n) && !this.warned.has(n)) {
          this.warned.add(n);
          this.logger.warn(`calendar ${n} is named by a task but does not exist: it excludes no date`);
        }
      days = excludedDaysOf(names.map((name) => ({ name, dates: this.byName.get(name)?.dates ?? [] })));
      this.made.set(key, days);
    }
    return days;
  };

  private apply(name: string, c: CalendarRecord | undefined): 'changed' | 'deleted' {
    if (c) this.byName.set(name, c);
    else this.byName.delete(name);
    this.warned.delete(name);
    // Sets naming it are made again when next asked for.
    for (const key of [...this.made.keys()]) if (key.split('\u0000').includes(name)) this.made.delete(key);
    this.onChange(name);
    return c ? 'changed' : 'deleted';
  }
}
