import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { auditStamp, calendarAuditRecord } from '../shared/codecs/task-event.js';
import type { CalendarAuditEvent } from '../shared/codecs/task-event.js';
import {
  calendarDateProblems,
  CALENDAR_DATES_SCHEMA,
  CALENDAR_NAME_PATTERN,
} from '../shared/schedule/calendar.js';
import { CalendarBook, CALENDARS_TOPIC } from '../shared/tasks/calendars.js';
import type { CalendarRecord, CalendarsOf } from '../shared/tasks/calendars.js';
import { ACTOR_HEADER } from '../shared/tasks/task-log.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { actorOf } from './auth/roles.js';
import type { Principal } from './auth/roles.js';
import type { FollowedTopic, KafkaStore } from './kafka-store.js';
import { sendAudit } from './audit-trail.js';
import { ApiError } from './problem.js';
import type { FieldError, Parsed } from './task-input.js';
import type { TaskView } from './task-view.js';

/** The body of `PUT /api/v1/calendars/{name}`. */
export interface CalendarInput {
  dates: string[];
  description?: string;
}

export const CALENDAR_INPUT_SCHEMA = {
  title: 'CalendarInput',
  type: 'object',
  additionalProperties: false,
  required: ['dates'],
  properties: {
    dates: CALENDAR_DATES_SCHEMA,
    description: { type: 'string', maxLength: 1000 },
  },
} as const;

export const CALENDAR_SCHEMA = {
  title: 'Calendar',
  type: 'object',
  required: ['name', 'dates', 'updatedAt'],
  properties: {
    name: { type: 'string', pattern: CALENDAR_NAME_PATTERN },
    dates: CALENDAR_DATES_SCHEMA,
    description: { type: 'string' },
    updatedAt: { type: 'string' },
    updatedBy: { type: 'string' },
  },
} as const;

/** A PUT body, or every error in it (each with its JSON pointer). */
export function parseCalendarInput(body: unknown): Parsed<CalendarInput> {
  const errors: FieldError[] = [];
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return { ok: false, errors: [{ pointer: '', detail: 'must be an object with dates' }] };
  const b = body as Record<string, unknown>;
  for (const k of Object.keys(b))
    if (k !== 'dates' && k !== 'description')
      errors.push({ pointer: `/${k}`, detail: 'is not a known field' });
  if (!Array.isArray(b.dates))
    errors.push({ pointer: '/dates', detail: 'is required: an array of dates and ranges' });
  else if (b.dates.length > CALENDAR_DATES_SCHEMA.maxItems)
    errors.push({ pointer: '/dates', detail: `has more than ${CALENDAR_DATES_SCHEMA.maxItems} items` });
  else
    for (const p of calendarDateProblems(b.dates))
      errors.push({
        pointer: `/dates/${p.index}`,
        detail: typeof p.value === 'string' ? `${JSON.stringify(p.value)} ${p.reason}` : p.reason,
      });
  if (b.description !== undefined && (typeof b.description !== 'string' || b.description.length > 1000))
    errors.push({ pointer: '/description', detail: 'must be a string of at most 1000 characters' });
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    value: {
      dates: b.dates as string[],
      ...(b.description === undefined ? {} : { description: b.description as string }),
    },
  };
}

/** Tasks a 409 names at most. */
const NAMED_TASKS = 10;

/**
 * The exclusion calendars of `taskmanager.calendars` (docs/http-api.md#calendars): read at start and followed like
 * the other views, written with read-your-writes (last write wins: a calendar is replaced whole), each change also an
 * audit event. Tasks name them by name: a task naming one that does not exist is refused, and a calendar a task
 * names cannot be deleted.
 */
export class CalendarService {
  readonly book: CalendarBook;

  constructor(
    private readonly o: { store: KafkaStore; clock: Clock; logger: Logger; tasks: () => TaskView },
  ) {
    this.book = new CalendarBook(o.logger);
  }

  topics(): FollowedTopic[] {
    return [
      {
        topic: CALENDARS_TOPIC,
        onRecord: (r) => this.o.store.settle(r, this.book.fold(r)),
        from: { fromBeginning: true },
      },
    ];
  }

  /** Resolves a task's calendar names for previews (next fires, the schedules page). */
  readonly excludedOf: CalendarsOf = (names) => this.book.excludedOf(names);

  list(): CalendarRecord[] {
    return this.book.all();
  }

  get(name: string): CalendarRecord {
    const c = this.book.get(name);
    if (!c) throw new ApiError(404, `no calendar ${name}`);
    return c;
  }

  /** Creates or replaces a calendar; `created` when there was none. */
  async put(
    name: string,
    input: CalendarInput,
    by: Principal,
  ): Promise<{ calendar: CalendarRecord; created: boolean }> {
    const actor = actorOf(by);
    const created = this.book.get(name) === undefined;
    const record: CalendarRecord = {
      v: 1,
      name,
      dates: input.dates,
      ...(input.description === undefined ? {} : { description: input.description }),
      updatedAt: new Date(this.o.clock.now()).toISOString(),
      updatedBy: actor,
    };
    const outcome = await this.o.store.write<string>(
      CALENDARS_TOPIC,
      name,
      Buffer.from(JSON.stringify(record)),
      {
        [ACTOR_HEADER]: actor,
      },
    );
    if (outcome === 'ignored')
      throw new ApiError(500, `calendar ${name} was written but its record was not read back`);
    await this.audit('calendar.changed', name, actor);
    return { calendar: this.book.get(name) ?? record, created };
  }

  /** Deletes a calendar no task names (409 naming some of those that do). */
  async remove(name: string, by: Principal): Promise<void> {
    this.get(name);
    const users = this.tasksNaming(name);
    if (users.length > 0)
      throw new ApiError(
        409,
        `calendar ${name} is named by task(s) ${users.join(', ')}${users.length === NAMED_TASKS ? ', …' : ''}: remove it from them first`,
      );
    const actor = actorOf(by);
    await this.o.store.write<string>(CALENDARS_TOPIC, name, null, { [ACTOR_HEADER]: actor });
    await this.audit('calendar.deleted', name, actor);
  }

  /** A task definition's calendars must exist (but those in `named`): a 400 naming each that does not. */
  check(def: Pick<TaskDefinition, 'calendars'>, named: readonly string[] = []): void {
    const errors: FieldError[] = (def.calendars ?? []).flatMap((name, i) =>
      this.book.get(name) || named.includes(name)
        ? []
        : [
            {
              pointer: `/calendars/${i}`,
              detail: `${JSON.stringify(name)} is not a calendar (PUT /api/v1/calendars/${name} first)`,
            },
          ],
    );
    if (errors.length > 0)
      throw new ApiError(400, `unknown calendar(s): ${errors.map((e) => e.detail).join('; ')}`, errors);
  }

  /**
   * Up to {@link NAMED_TASKS} ids of tasks naming `name`. The definitions are in the task store, not in memory: each
   * is looked at as bytes first, and parsed only when it holds the name (a scan per delete, which is rare).
   */
  private tasksNaming(name: string): string[] {
    const view = this.o.tasks();
    const quoted = Buffer.from(JSON.stringify(name));
    const out: string[] = [];
    for (const t of view.entries()) {
      const value = view.defs.definition(t.id);
      if (!value?.includes(quoted)) continue;
      const def = view.get(t.id)?.def;
      if (def?.calendars?.includes(name)) out.push(t.id);
      if (out.length >= NAMED_TASKS) break;
    }
    return out;
  }

  private async audit(action: CalendarAuditEvent['action'], name: string, actor: string): Promise<void> {
    const event: CalendarAuditEvent = {
      v: 1,
      kind: 'audit',
      action,
      calendar: name,
      ...auditStamp(actor, this.o.clock.now()),
    };
    await sendAudit(this.o, calendarAuditRecord(event), `${action} of calendar ${name}`);
  }
}
