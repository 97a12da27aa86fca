import { fileKey, KIND_SCHEMAS, OPTION_SCHEMAS } from '../schedule/model.js';
import type { InFileKeys, ScheduleOptions } from '../schedule/model.js';
import type { ScheduleSpec } from '../schedule/spec.js';
import type { ExcludedDays } from '../schedule/calendar.js';

/** One entry of a schedule file, as written (PascalCase, as the old Go tool had it). */
export interface RawScheduleEntry extends InFileKeys<Partial<ScheduleOptions>> {
  Id: string;
  /** Exactly one of Cron, RunAt (RFC 3339: fires once) and Every (`5s`, `1m30s`, or ms: fires every interval). */
  Cron?: string;
  RunAt?: string;
  Every?: string | number;
  Topic: string;
  Enabled?: boolean;
  MisfireWindowSeconds?: number;
  TaskMessageTemplate: {
    TaskProcessorName: string;
    TaskParam?: string;
    /** Any JSON value. */
    Payload?: unknown;
  };
}

/** The schedule model's fields under their file names: `Cron`, `RunAt`, `Every`, `TimeZone`, `Misfire`. */
const scheduleProperties = Object.fromEntries(
  Object.entries({ ...KIND_SCHEMAS, ...OPTION_SCHEMAS }).map(([field, schema]) => [fileKey(field), schema]),
);

/** The file's JSON schema (ajv, strict): the schedule's fields from the schedule model, the file's own beside them. */
export const scheduleFileSchema = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['Id', 'Topic', 'TaskMessageTemplate'],
    properties: {
      Id: { type: 'string', minLength: 1, maxLength: 200 },
      ...scheduleProperties,
      Topic: { type: 'string', minLength: 1 },
      Enabled: { type: 'boolean', nullable: true },
      MisfireWindowSeconds: { type: 'integer', nullable: true, minimum: 0 },
      TaskMessageTemplate: {
        type: 'object',
        additionalProperties: false,
        required: ['TaskProcessorName'],
        properties: {
          TaskProcessorName: { type: 'string', minLength: 1 },
          TaskParam: { type: 'string', nullable: true },
          Payload: {},
        },
      },
    },
  },
} as const;

/**
 * A validated, normalized, frozen schedule entry: nothing downstream re-checks it. Its options (zone, misfire) are
 * the schedule model's; a file leaves the zone out for `UTC` and the misfire policy for `fire-once`.
 */
export interface ScheduleEntry extends Readonly<ScheduleOptions> {
  readonly id: string;
  readonly spec: ScheduleSpec;
  readonly topic: string;
  /** @default true */
  readonly enabled: boolean;
  /** @default 3600 */
  readonly misfireWindowSeconds: number;
  readonly processor: string;
  readonly param?: string;
  readonly payload?: unknown;
  /** Index in the file, for messages. */
  readonly index: number;
  /** Where the entry comes from: a schedule file (absent) or a task created over HTTP. */
  readonly source?: 'api';
  /**
   * The dates its `calendars` exclude, resolved where the entry was made (the file's `Calendars`, taskapi's
   * calendars); absent without calendars. Part of what compares two versions of an entry: a calendar edit changes it.
   */
  readonly excluded?: ExcludedDays;
}
