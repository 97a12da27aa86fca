import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseRfc3339 } from '../shared/rfc3339.js';
import type { AuditTrail } from './audit-trail.js';
import type { AuditQuery } from './audit-view.js';
import { decodeCursor, encodeCursor } from './page-cursor.js';
import { ApiError } from './problem.js';
import { COMMON_ERRORS, json, pageQuery, route } from './route-schemas.js';

const FILTER = { type: 'string', minLength: 1, maxLength: 512 } as const;

const AUDIT_QUERY = pageQuery({
  cursor: {
    type: 'string',
    maxLength: 2000,
    description: 'nextCursor of the previous page (entries added meanwhile never shift a page)',
  },
  task: {
    ...FILTER,
    description:
      'Only the entries of this task or schedule (file entry) id: its changes, triggers, pauses, cancels and DLQ replays',
  },
  calendar: { ...FILTER, description: 'Only the changes of this exclusion calendar' },
  group: { ...FILTER, description: 'Only the entries of tasks and schedules of this scheduler group' },
  actor: { ...FILTER, description: 'Only what this user did (with or without an API token)' },
  action: {
    ...FILTER,
    description: 'Only this action (task.changed), or every action of a kind (task, schedule, calendar, dlq)',
  },
  since: {
    type: 'string',
    maxLength: 64,
    description: 'Only entries at or after this RFC 3339 date-time (2026-12-01T09:00:00Z)',
  },
} as const);

const FROM_SCHEMA = {
  type: 'object',
  properties: { host: { type: 'string' }, pid: { type: 'integer' } },
} as const;

/** One entry: the audit event as written (docs/messages-and-topics.md#status-and-audit-events), but `v` and `kind`. */
const AUDIT_ITEM_SCHEMA = {
  type: 'object',
  required: ['position', 'action', 'user', 'at'],
  additionalProperties: true,
  properties: {
    position: { type: 'string', description: '<partition>@<offset> in taskmanager.audit' },
    action: {
      type: 'string',
      description:
        'task.created, task.changed, task.deleted, task.triggered, task.cancelled, task.backfilled, schedule.triggered, schedule.paused, schedule.resumed, schedule.cancelled, calendar.changed, calendar.deleted, dlq.replayed (later versions may add others)',
    },
    user: { type: 'string', description: 'Who: the user name, with the API token id when one was used' },
    at: { type: 'string', description: 'When (UTC)' },
    task: { type: 'string', description: 'task.*: the API task' },
    schedule: { type: 'string', description: 'schedule.*: the schedule id; dlq.replayed: that of the task' },
    calendar: { type: 'string', description: 'calendar.*: the calendar' },
    group: { type: 'string', description: 'The scheduler group of the task or schedule, when known' },
    version: { type: 'string', description: 'task.*: the task’s version after the change (before a delete)' },
    taskId: {
      type: 'string',
      description: 'The fire (triggered), the run (cancelled), the task (dlq.replayed)',
    },
    changed: {
      type: 'array',
      items: { type: 'string' },
      description: 'task.changed: the fields set to another value',
    },
    enabled: {
      type: 'boolean',
      description: 'task.changed: false when it paused the task, true when it resumed it',
    },
    backfill: {
      type: 'object',
      properties: { from: { type: 'string' }, to: { type: 'string' }, published: { type: 'integer' } },
    },
    dlq: { type: 'string', description: 'dlq.replayed: the DLQ topic' },
    entry: { type: 'string', description: 'dlq.replayed: <partition>@<offset> of the entry in the DLQ' },
    from: FROM_SCHEMA,
  },
} as const;

const AUDIT_PAGE_SCHEMA = {
  type: 'object',
  required: ['items', 'total', 'status', 'kept', 'keep'],
  properties: {
    items: { type: 'array', items: AUDIT_ITEM_SCHEMA },
    total: { type: 'integer', description: 'Entries matching the filters, in all pages' },
    nextCursor: { type: 'string', description: 'Pass as cursor for the next page; absent on the last page' },
    status: {
      type: 'string',
      enum: ['no-topic', 'reading', 'current'],
      description:
        'no-topic: taskmanager.audit does not exist (nothing is audited); reading: taskapi is still reading the entries it keeps; current: it follows the topic',
    },
    kept: { type: 'integer', description: 'Entries this instance keeps now (the newest of the topic)' },
    keep: { type: 'integer', description: 'The most it keeps (--audit-keep)' },
    oldest: { type: 'string', description: 'The time of the oldest entry kept' },
  },
} as const;

const LIST = route('viewer', {
  tags: ['audit'],
  summary:
    'Who created, changed, paused, triggered, cancelled, backfilled or replayed what, newest first, from the newest entries of taskmanager.audit this instance keeps (--audit-keep)',
  querystring: AUDIT_QUERY,
  response: { 200: json(AUDIT_PAGE_SCHEMA, 'One page of audit entries, newest first'), ...COMMON_ERRORS },
});

type ListRequest = {
  Querystring: {
    limit: number;
    cursor?: string;
    task?: string;
    calendar?: string;
    group?: string;
    actor?: string;
    action?: string;
    since?: string;
  };
};

function sinceOf(text: string): number {
  const ms = parseRfc3339(text);
  if (ms === undefined)
    throw new ApiError(400, `since ${JSON.stringify(text)} is not an RFC 3339 date-time`, [
      {
        pointer: '/since',
        detail: 'must be an RFC 3339 date-time with an offset, like 2026-12-01T09:00:00Z',
      },
    ]);
  return ms;
}

function afterOf(cursor: string): NonNullable<AuditQuery['after']> {
  const [atMs, position] = decodeCursor(cursor, 2) as [string, string];
  if (!/^-?\d{1,16}$/.test(atMs) || !/^\d{1,9}@\d{1,19}$/.test(position))
    throw new ApiError(400, 'cursor is not one this API returned', [
      { pointer: '/cursor', detail: 'is not a nextCursor value from a previous page' },
    ]);
  return { atMs: Number(atMs), position };
}

function list(trail: AuditTrail, req: FastifyRequest<ListRequest>): object {
  trail.poke();
  const { limit, cursor, since, ...filters } = req.query;
  const page = trail.view.page({
    limit,
    ...filters,
    ...(since === undefined ? {} : { since: sinceOf(since) }),
    ...(cursor === undefined ? {} : { after: afterOf(cursor) }),
  });
  const { oldest } = trail.view;
  return {
    items: page.items,
    total: page.total,
    ...(page.next ? { nextCursor: encodeCursor([String(page.next.atMs), page.next.position]) } : {}),
    status: trail.status,
    kept: trail.view.size,
    keep: trail.view.keep,
    ...(oldest === undefined ? {} : { oldest }),
  };
}

/** `GET /api/v1/audit`: the audit trail (viewers, as every other read). */
export function registerAuditRoutes(app: FastifyInstance, trail: AuditTrail): void {
  app.get<ListRequest>('/api/v1/audit', LIST, (req) => list(trail, req));
}
