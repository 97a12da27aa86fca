import { BACKFILL_DEFAULT_MAX, BACKFILL_MAX_CEILING, rangeProblems } from '../shared/backfill.js';
import type { BackfillRange } from '../shared/backfill.js';
import type { Parsed } from './task-input.js';

/** The body of `POST /api/v1/tasks/{id}/backfill` (docs/http-api.md#backfill). */
export const BACKFILL_BODY_SCHEMA = {
  type: 'object',
  required: ['from', 'to'],
  additionalProperties: false,
  properties: {
    from: {
      type: 'string',
      format: 'date-time',
      description: 'First instant of the range (RFC 3339 with an offset), included',
    },
    to: {
      type: 'string',
      format: 'date-time',
      description: 'Last instant of the range, included; not in the future (400)',
    },
    max: {
      type: 'integer',
      minimum: 1,
      maximum: BACKFILL_MAX_CEILING,
      default: BACKFILL_DEFAULT_MAX,
      description: 'Refuse (400) a range holding more instants of the schedule than this',
    },
    dryRun: {
      type: 'boolean',
      default: false,
      description: 'List what would be published; publish nothing',
    },
  },
} as const;

const TASK_IDS = { type: 'array', items: { type: 'string' } } as const;

/** The answer: the taskIds of the range's instants, oldest first, by what became of them. */
export const BACKFILL_SCHEMA = {
  type: 'object',
  required: ['message', 'topic', 'dryRun', 'published', 'present', 'pending'],
  properties: {
    message: { type: 'string' },
    topic: { type: 'string', description: 'The task topic the tasks went (or would go) to' },
    dryRun: { type: 'boolean' },
    published: {
      ...TASK_IDS,
      description: 'Instants without a task, published now (with dryRun: that would be), oldest first',
    },
    present: { ...TASK_IDS, description: 'Instants that already had a task: not published again' },
    pending: {
      ...TASK_IDS,
      description:
        'Instants the schedule has not reached yet (a jitter delay not over) or never will (past its maxRuns): not backfilled',
    },
    keptSince: {
      type: 'string',
      description:
        'When some of published are older than the oldest record the task topic’s partition still holds (written then): retention may have deleted their tasks',
    },
  },
} as const;

/** A backfill body as a range: every problem with its pointer. */
export function parseBackfillBody(body: unknown): Parsed<BackfillRange> {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return { ok: false, errors: [{ pointer: '', detail: 'must be an object with from and to' }] };
  const b = body as Record<string, unknown>;
  const errors = Object.keys(b)
    .filter((k) => !(k in BACKFILL_BODY_SCHEMA.properties))
    .map((k) => ({ pointer: `/${k}`, detail: 'is not a field of a backfill (from, to, max, dryRun)' }));
  if (b.dryRun !== undefined && typeof b.dryRun !== 'boolean')
    errors.push({ pointer: '/dryRun', detail: 'must be true or false' });
  errors.push(...rangeProblems(b).map((p) => ({ pointer: `/${p.field}`, detail: p.detail })));
  if (errors.length > 0) return { ok: false, errors };
  return {
    ok: true,
    value: {
      from: b.from as string,
      to: b.to as string,
      max: (b.max as number | undefined) ?? BACKFILL_DEFAULT_MAX,
      dryRun: b.dryRun === true,
    },
  };
}
