import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ClusterStatus } from './cluster-status.js';
import { principalOf } from './auth/guard.js';
import { actorOf } from './auth/roles.js';
import {
  cancelRoute,
  COMMON_ERRORS,
  json,
  pageQuery,
  logsRoute,
  problem,
  route,
  TASK_ID_PARAM,
} from './route-schemas.js';
import type { Principal } from './auth/roles.js';
import type { CancelResult } from './task-service.js';
import type { ScheduleAuditAction } from '../shared/codecs/task-event.js';
import type { RunLogAnswer } from './run-logs.js';
import { RUN_SCHEMA } from './task-model.js';

const SCHEDULE_PARAMS = {
  type: 'object',
  required: ['group', 'id'],
  properties: {
    group: { type: 'string', minLength: 1, maxLength: 249, description: 'The scheduler group' },
    id: {
      type: 'string',
      minLength: 1,
      maxLength: 512,
      description: 'The schedule Id (file) or task id (API)',
    },
  },
} as const;

const STRINGS = { type: 'array', items: { type: 'string' } } as const;
const COUNTS = { type: 'array', items: { type: 'integer' } } as const;

const ROW_SCHEMA = {
  type: 'object',
  required: [
    'id',
    'source',
    'group',
    'spec',
    'description',
    'timeZone',
    'processor',
    'topic',
    'state',
    'nextFireTimes',
  ],
  properties: {
    id: { type: 'string' },
    source: { type: 'string', enum: ['file', 'api'], description: 'A schedule file entry, or an API task' },
    group: { type: 'string', description: 'The scheduler group that fires it' },
    spec: { type: 'string', description: 'As written: cron expression, `once at …` or `every …`' },
    description: { type: 'string', description: 'The spec in words' },
    timeZone: { type: 'string' },
    processor: { type: 'string' },
    topic: { type: 'string' },
    state: {
      type: 'string',
      enum: ['enabled', 'paused', 'disabled', 'ended'],
      description: 'ended: past its endAt or at its maxRuns, it fires nothing more',
    },
    owner: {
      type: 'string',
      description: 'host:pid of the scheduler instance firing it (absent: none answered)',
    },
    nextFireTimes: {
      ...STRINGS,
      description: 'The next three fire instants (UTC; with jitter, the nominal ones)',
    },
    jitter: { type: 'integer', description: 'Seconds of jitter, when set' },
    nextDueTimes: { ...STRINGS, description: 'With jitter: when each of nextFireTimes is due (UTC)' },
    startAt: { type: 'string', description: 'No fire before it, when set' },
    endAt: { type: 'string', description: 'No fire after it, when set' },
    maxRuns: { type: 'integer', description: 'Fires at most, when set' },
    runCount: { type: 'integer', description: 'With maxRuns: fires so far (from the owner instance)' },
    calendars: { ...STRINGS, description: 'Exclusion calendars it names, when any: no fire on their dates' },
    overlap: {
      type: 'string',
      enum: ['skip', 'replace', 'allow'],
      description: 'Its overlap policy, when not the default queue',
    },
    lastFiredAt: { type: 'string' },
    lastRun: RUN_SCHEMA,
  },
} as const;

const SCHEDULER_GROUP_SCHEMA = {
  type: 'object',
  required: ['group', 'running', 'instances', 'unansweredPartitions'],
  properties: {
    group: { type: 'string' },
    running: { type: 'boolean', description: 'Kafka lists members of the group now' },
    instances: {
      type: 'array',
      items: {
        type: 'object',
        required: ['host', 'pid', 'partitions', 'ready', 'reason'],
        properties: {
          host: { type: 'string' },
          pid: { type: 'integer' },
          partitions: { ...COUNTS, description: 'State partitions it owns' },
          ready: { type: 'boolean' },
          reason: { type: 'string' },
        },
      },
    },
    unansweredPartitions: { ...COUNTS, description: 'State partitions no instance answered for' },
  },
} as const;

const CONSUMER_GROUP_SCHEMA = {
  type: 'object',
  required: ['group', 'state', 'members', 'partitions', 'totalLag'],
  properties: {
    group: { type: 'string' },
    state: { type: 'string', description: "Kafka's group state (Stable, PreparingRebalance, …)" },
    members: {
      type: 'array',
      items: {
        type: 'object',
        required: ['clientId', 'host', 'partitions'],
        properties: { clientId: { type: 'string' }, host: { type: 'string' }, partitions: STRINGS },
      },
    },
    partitions: {
      type: 'array',
      items: {
        type: 'object',
        required: ['topic', 'partition', 'end', 'lag'],
        properties: {
          topic: { type: 'string' },
          partition: { type: 'integer' },
          committed: { type: 'string' },
          end: { type: 'string' },
          lag: {
            type: 'string',
            description: 'Records not yet processed (a decimal string: it can exceed 2^53)',
          },
          owner: { type: 'string' },
        },
      },
    },
    totalLag: { type: 'string' },
    error: { type: 'string', description: 'Why its lag could not be read' },
  },
} as const;

const RATES_SCHEMA = {
  type: 'object',
  required: ['from', 'seconds', 'fired', 'finished', 'failed', 'fireLagMeanMs', 'fireLagMaxMs'],
  properties: {
    from: { type: 'string', description: 'Start of the first one-second bucket' },
    seconds: { type: 'integer' },
    fired: COUNTS,
    finished: COUNTS,
    failed: COUNTS,
    fireLagMeanMs: COUNTS,
    fireLagMaxMs: COUNTS,
  },
} as const;

const SCHEDULES_QUERY = pageQuery({
  q: {
    type: 'string',
    maxLength: 200,
    description: 'Only rows whose id, group, processor or spec contain it',
  },
  cursor: {
    type: 'string',
    maxLength: 2000,
    description: 'nextCursor of the previous page (stable when schedules come and go)',
  },
} as const);

const SCHEDULES_PAGE_SCHEMA = {
  type: 'object',
  required: ['items', 'total', 'groups'],
  properties: {
    items: { type: 'array', items: ROW_SCHEMA },
    total: { type: 'integer', description: 'Rows matching q, in all pages' },
    nextCursor: {
      type: 'string',
      description: 'Pass as cursor for the next page; absent on the last page',
    },
    groups: { type: 'array', items: SCHEDULER_GROUP_SCHEMA },
  },
} as const;

const SCHEDULES = route('viewer', {
  tags: ['cluster'],
  summary:
    'Every schedule, from schedule files and from this API, with its owner instance, state, next fires and last run, one page at a time (from answers taskapi takes at most every 5 s, however many callers)',
  querystring: SCHEDULES_QUERY,
  response: {
    200: json(SCHEDULES_PAGE_SCHEMA, 'One page of the schedules, sorted by id (then group)'),
    ...COMMON_ERRORS,
  },
});

type SchedulesQuery = { Querystring: { limit: number; q?: string; cursor?: string } };

function schedules(
  status: ClusterStatus,
  req: FastifyRequest<SchedulesQuery>,
): ReturnType<ClusterStatus['schedules']> {
  return status.schedules({
    limit: req.query.limit,
    ...(req.query.q ? { search: req.query.q } : {}),
    ...(req.query.cursor === undefined ? {} : { cursor: req.query.cursor }),
  });
}

const SCHEDULE = route('viewer', {
  tags: ['cluster'],
  summary: 'One schedule of a scheduler group (file entry or API task) with its recent runs, newest first',
  params: SCHEDULE_PARAMS,
  response: {
    200: json(
      {
        ...ROW_SCHEMA,
        required: [...ROW_SCHEMA.required, 'runs'],
        properties: { ...ROW_SCHEMA.properties, runs: { type: 'array', items: RUN_SCHEMA } },
      },
      'The schedule',
    ),
    ...COMMON_ERRORS,
  },
});

type ScheduleParams = { Params: { group: string; id: string } };
type Action = 'trigger' | 'pause' | 'resume';
const ACTIONS: readonly Action[] = ['trigger', 'pause', 'resume'];

const ACTION_SUMMARIES: Record<Action, string> = {
  trigger: 'Fire a schedule now, outside its spec, through the instance that owns it',
  pause: 'Pause a schedule (kept across restarts and failover) through the instance that owns it',
  resume: 'Resume a paused schedule from now (nothing missed while paused is caught up)',
};

/** A trigger is accepted (the task is published, not yet run), as POST /api/v1/tasks/{id}/trigger. */
const statusOf = (action: Action): number => (action === 'trigger' ? 202 : 200);

const ACTION = (action: Action) =>
  route('operator', {
    tags: ['cluster'],
    summary: ACTION_SUMMARIES[action],
    params: SCHEDULE_PARAMS,
    response: {
      [statusOf(action)]: json(
        {
          type: 'object',
          required: ['message'],
          properties: { message: { type: 'string' }, taskId: { type: 'string' } },
        },
        "The owner's answer",
      ),
      ...COMMON_ERRORS,
      409: problem(
        'The owner refused, an API task (paused with PATCH enabled instead), or no instance of the group runs',
      ),
    },
  });

/** Records an action on a schedule (see ScheduleAuditEvent). */
export type ScheduleAudit = (
  action: ScheduleAuditAction,
  ids: { group: string; schedule: string; taskId?: string },
  user: string,
) => Promise<void>;

const AUDITED: Record<Action, ScheduleAuditAction> = {
  trigger: 'schedule.triggered',
  pause: 'schedule.paused',
  resume: 'schedule.resumed',
};

async function scheduleAction(
  status: ClusterStatus,
  audit: ScheduleAudit,
  action: Action,
  req: FastifyRequest<ScheduleParams>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const actor = actorOf(principalOf(req));
  const { group, id } = req.params;
  const answer = await status.command(action, group, id, actor);
  await audit(
    AUDITED[action],
    { group, schedule: id, ...(answer.taskId === undefined ? {} : { taskId: answer.taskId }) },
    actor,
  );
  return reply.code(statusOf(action)).send(answer);
}

const CLUSTER_SCHEMA = {
  type: 'object',
  required: ['schedulers', 'consumers', 'rates'],
  properties: {
    schedulers: { type: 'array', items: SCHEDULER_GROUP_SCHEMA },
    consumers: { type: 'array', items: CONSUMER_GROUP_SCHEMA },
    rates: RATES_SCHEMA,
  },
} as const;

const CLUSTER = route('viewer', {
  tags: ['cluster'],
  summary:
    'Scheduler instances and their partitions, consumer groups with lag per partition, tasks per second and fire lag',
  response: { 200: json(CLUSTER_SCHEMA, 'The cluster now'), ...COMMON_ERRORS },
});

const RUN_PARAMS = {
  ...SCHEDULE_PARAMS,
  required: [...SCHEDULE_PARAMS.required, 'taskId'],
  properties: { ...SCHEDULE_PARAMS.properties, taskId: TASK_ID_PARAM },
};
const CANCEL = cancelRoute('cluster', RUN_PARAMS);
const LOGS = logsRoute('cluster', RUN_PARAMS);

/** Asks the consumers to cancel a run of a schedule (TaskService.requestCancel). */
export type CancelRun = (
  scheduleId: string,
  taskId: string,
  reason: string | undefined,
  by: Principal,
) => Promise<CancelResult>;

/** The log of a run of a schedule (TaskService.runLogOf). */
export type RunLogOf = (scheduleId: string, taskId: string) => Promise<RunLogAnswer>;

type CancelParams = {
  Params: { group: string; id: string; taskId: string };
  Body: { reason?: string } | undefined;
};

/** `/api/v1/schedules` and `/api/v1/cluster`: what the dashboard's overview and health pages show. */
export function registerClusterRoutes(
  app: FastifyInstance,
  status: ClusterStatus,
  runs: { cancel: CancelRun; logs: RunLogOf; audit: ScheduleAudit },
): void {
  app.get<SchedulesQuery>('/api/v1/schedules', SCHEDULES, (req) => schedules(status, req));
  app.get<ScheduleParams>('/api/v1/schedules/:group/:id', SCHEDULE, (req) =>
    status.schedule(req.params.group, req.params.id),
  );
  for (const action of ACTIONS)
    app.post<ScheduleParams>(`/api/v1/schedules/:group/:id/${action}`, ACTION(action), (req, reply) =>
      scheduleAction(status, runs.audit, action, req, reply),
    );
  app.post<CancelParams>('/api/v1/schedules/:group/:id/runs/:taskId/cancel', CANCEL, async (req, reply) => {
    // 404 for a schedule no instance of the group reports.
    await status.schedule(req.params.group, req.params.id);
    const by = principalOf(req);
    const answer = await runs.cancel(req.params.id, req.params.taskId, req.body?.reason, by);
    const { group, id, taskId } = req.params;
    await runs.audit('schedule.cancelled', { group, schedule: id, taskId }, actorOf(by));
    return reply.code(202).send(answer);
  });
  app.get<{ Params: CancelParams['Params'] }>(
    '/api/v1/schedules/:group/:id/runs/:taskId/logs',
    LOGS,
    async (req) => {
      await status.schedule(req.params.group, req.params.id);
      return runs.logs(req.params.id, req.params.taskId);
    },
  );
  app.get('/api/v1/cluster', CLUSTER, () => status.cluster());
}
