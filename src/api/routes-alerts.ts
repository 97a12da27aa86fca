import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Clock } from '../shared/clock.js';
import { ALERT_KINDS } from '../shared/schedule/alerts.js';
import { alertAuditRecord, auditStamp } from '../shared/codecs/task-event.js';
import type { OutRecord } from '../shared/kafka/index.js';
import type { AlertBook, AlertItem } from './alert-book.js';
import { ALERTS_KEPT } from './alert-book.js';
import { principalOf } from './auth/guard.js';
import { actorOf } from './auth/roles.js';
import { ApiError } from './problem.js';
import { COMMON_ERRORS, json, route } from './route-schemas.js';

const STRING = { type: 'string' } as const;
/** A string field and what it holds. */
const text = (description: string) => ({ type: 'string', description }) as const;

const ALERT_SCHEMA = {
  type: 'object',
  required: ['id', 'kind', 'scheduleId', 'taskId', 'reason', 'at', 'raisedBy', 'deliveryTaskId'],
  properties: {
    id: text('The alert (the same for every raise of it)'),
    kind: { type: 'string', enum: [...ALERT_KINDS] },
    scheduleId: STRING,
    taskId: text('The run it is about'),
    reason: STRING,
    at: text('When it was raised'),
    raisedBy: text('consumer (failed, skipped, overrun) or scheduler (late, missed, deadline)'),
    deliveryTaskId: text(
      'The task that delivers it to the schedule’s channel: alert/<scheduleId>/<kind>@<instant>',
    ),
    acknowledged: {
      type: 'object',
      required: ['user', 'at'],
      properties: { user: STRING, at: STRING },
    },
  },
} as const;

const LIST = route('viewer', {
  tags: ['alerts'],
  summary: `Open alerts (not acknowledged), newest first, of the newest ${ALERTS_KEPT} this instance read from taskmanager.events`,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: { all: { type: 'boolean', default: false, description: 'Acknowledged ones too' } },
  },
  response: {
    200: json(
      { type: 'object', required: ['items'], properties: { items: { type: 'array', items: ALERT_SCHEMA } } },
      'The alerts, newest first',
    ),
    ...COMMON_ERRORS,
  },
});

const ACK = route('operator', {
  tags: ['alerts'],
  summary:
    'Acknowledge an alert: it leaves the open list; the acknowledgement is an audit event (alert.acknowledged), kept across restarts',
  params: {
    type: 'object',
    required: ['id'],
    properties: { id: { type: 'string', pattern: '^[0-9a-f]{20}$' } },
  },
  response: {
    200: json(ALERT_SCHEMA, 'The alert, acknowledged (by whom first, when acknowledged before)'),
    ...COMMON_ERRORS,
  },
});

export interface AlertRoutesOptions {
  book: AlertBook;
  /** Writes the acknowledgement's audit event: the acknowledgement is made only once it is written. */
  write(record: OutRecord): Promise<void>;
  clock: Clock;
}

async function ack(
  o: AlertRoutesOptions,
  req: FastifyRequest<{ Params: { id: string } }>,
): Promise<AlertItem> {
  const a = o.book.get(req.params.id);
  if (!a) throw new ApiError(404, `no alert ${req.params.id} (of the newest ${ALERTS_KEPT} read)`);
  if (a.acknowledged) return a;
  const user = actorOf(principalOf(req));
  const stamp = auditStamp(user, o.clock.now());
  await o.write(
    alertAuditRecord({
      v: 1,
      kind: 'audit',
      action: 'alert.acknowledged',
      alert: a.id,
      schedule: a.scheduleId,
      taskId: a.taskId,
      alertKind: a.kind,
      ...stamp,
    }),
  );
  o.book.acknowledged(a.id, stamp.user, stamp.at);
  return o.book.get(a.id) ?? a;
}

/** `/api/v1/alerts…`: the alerts of schedules (docs/http-api.md#alerts) and their acknowledgement. */
export function registerAlertRoutes(app: FastifyInstance, o: AlertRoutesOptions): void {
  app.get<{ Querystring: { all: boolean } }>('/api/v1/alerts', LIST, (req) => ({
    items: o.book.list(req.query.all),
  }));
  app.post<{ Params: { id: string } }>('/api/v1/alerts/:id/ack', ACK, (req) => ack(o, req));
}
