import type { ScheduleSpec } from '../schedule/spec.js';
import type { JSONSchemaType } from 'ajv';

export type MisfirePolicy = 'skip' | 'fire-once' | 'fire-all';
export const MISFIRE_POLICIES: readonly MisfirePolicy[] = ['skip', 'fire-once', 'fire-all'];

/** One entry of a schedule file, as written (PascalCase, as the old Go tool had it). */
export interface RawScheduleEntry {
  Id: string;
  /** Exactly one of Cron, RunAt (RFC 3339: fires once) and Every (`5s`, `1m30s`, or ms: fires every interval). */
  Cron?: string;
  RunAt?: string;
  Every?: string;
  Topic: string;
  TimeZone?: string;
  Enabled?: boolean;
  Misfire?: MisfirePolicy;
  MisfireWindowSeconds?: number;
  TaskMessageTemplate: {
    TaskProcessorName: string;
    TaskParam?: string;
    /** Any JSON value. */
    Payload?: unknown;
  };
}

export const scheduleFileSchema: JSONSchemaType<RawScheduleEntry[]> = {
  type: 'array',
  items: {
    type: 'object',
    additionalProperties: false,
    required: ['Id', 'Topic', 'TaskMessageTemplate'],
    properties: {
      Id: { type: 'string', minLength: 1, maxLength: 200 },
      Cron: { type: 'string', nullable: true, minLength: 1 },
      RunAt: { type: 'string', nullable: true, minLength: 1 },
      Every: { type: 'string', nullable: true, minLength: 1 },
      Topic: { type: 'string', minLength: 1 },
      TimeZone: { type: 'string', nullable: true, minLength: 1 },
      Enabled: { type: 'boolean', nullable: true },
      Misfire: { type: 'string', nullable: true, enum: [...MISFIRE_POLICIES] },
      MisfireWindowSeconds: { type: 'integer', nullable: true, minimum: 0 },
      TaskMessageTemplate: {
        type: 'object',
        additionalProperties: false,
        required: ['TaskProcessorName'],
        properties: {
          TaskProcessorName: { type: 'string', minLength: 1 },
          TaskParam: { type: 'string', nullable: true },
          Payload: {} as JSONSchemaType<RawScheduleEntry['TaskMessageTemplate']>['properties']['Payload'],
        },
      },
    },
  },
};

/** A validated, normalized, frozen schedule entry: nothing downstream re-checks it. */
export interface ScheduleEntry {
  readonly id: string;
  readonly spec: ScheduleSpec;
  readonly topic: string;
  /** IANA zone. @default 'UTC' */
  readonly timeZone: string;
  /** @default true */
  readonly enabled: boolean;
  /** @default 'fire-once' */
  readonly misfire: MisfirePolicy;
  /** @default 3600 */
  readonly misfireWindowSeconds: number;
  readonly processor: string;
  readonly param?: string;
  readonly payload?: unknown;
  /** Index in the file, for messages. */
  readonly index: number;
  /** Where the entry comes from: a schedule file (absent) or a task created over HTTP. */
  readonly source?: 'api';
}
