import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principalOf } from './auth/guard.js';
import {
  BODY_ERRORS,
  COMMON_ERRORS,
  ID_PARAMS,
  IF_MATCH_HEADERS,
  json,
  LIST_QUERY,
  cancelRoute,
  logsRoute,
  noContent,
  TASK_ID_PARAM,
  problem,
  route,
  RUN_LIST_SCHEMA,
  TASK_LIST_SCHEMA,
  TRIGGER_SCHEMA,
} from './route-schemas.js';
import {
  CREATE_BODY_SCHEMA,
  DEFAULT_MAX_PAYLOAD_BYTES,
  inputOfLegacyV1,
  isLegacyV1Body,
  parseLegacyV1,
  parseTaskInput,
  parseTaskPatch,
  payloadLimited,
  TASK_PATCH_SCHEMA,
} from './task-input.js';
import type { Parsed, TaskInput, TaskPatch } from './task-input.js';
import { TASK_SCHEMA } from './task-model.js';
import { BACKFILL_BODY_SCHEMA, BACKFILL_SCHEMA, parseBackfillBody } from './backfill-input.js';
import type { BackfillRange } from '../shared/backfill.js';
import type { ApiTask } from './task-model.js';
import type { ListRequest, TaskService } from './task-service.js';
import { TRACEPARENT_HEADER } from '../shared/tracing.js';

/** Our body, or the old `/api/v1/tasks` service's (told apart by its `type` field), as our input. */
function createBodyParser(service: TaskService): (body: unknown) => Parsed<TaskInput> {
  return (body) => {
    if (!isLegacyV1Body(body)) return parseTaskInput(body);
    const legacy = parseLegacyV1(body);
    return legacy.ok ? { ok: true, value: inputOfLegacyV1(legacy.value, service.now()) } : legacy;
  };
}

const BASE = '/api/v1/tasks';
type IdParams = { id: string };
type IfMatch = { 'if-match'?: string };

/** Sends a task (or the view of it given as `body`) with its version as the ETag. */
function sendTask(reply: FastifyReply, task: ApiTask, status = 200, body: object = task): FastifyReply {
  return reply.code(status).header('etag', `"${task.version}"`).send(body);
}

export type TaskSummary = Omit<ApiTask, 'payload' | 'param'>;

/** A task as a list shows it: without its payload and param, which may be large (the task's own GET has them). */
export function taskSummary(t: ApiTask): TaskSummary {
  const { payload: _payload, param: _param, ...summary } = t;
  return summary;
}

export interface TaskRoutesOptions {
  /** Largest task payload, bytes of its JSON (413 above). @default 65536 */
  maxPayloadBytes?: number;
}

type Parser<T> = (body: unknown) => Parsed<T>;

const CREATE = (parse: Parser<TaskInput>) =>
  route(
    'operator',
    {
      tags: ['tasks'],
      summary: 'Create a task (our body, or the old service’s {name, type, period, payload})',
      body: CREATE_BODY_SCHEMA,
      response: { 201: json(TASK_SCHEMA, 'Created; stored in Kafka and read back'), ...BODY_ERRORS },
    },
    parse,
  );

/** Creates the task in the body: 201, its URL under `base` as Location, its ETag, and the task as `view` shows it. */
/** The request's W3C `traceparent` header (its first, when repeated). */
function traceparentOf(req: FastifyRequest): string | undefined {
  const h = req.headers[TRACEPARENT_HEADER];
  return Array.isArray(h) ? h[0] : h;
}

export async function createTask(
  service: TaskService,
  req: FastifyRequest<{ Body: TaskInput }>,
  reply: FastifyReply,
  base = BASE,
  view: (task: ApiTask) => object = (task) => task,
): Promise<FastifyReply> {
  const task = await service.create(req.body, principalOf(req), traceparentOf(req));
  return sendTask(reply.header('location', `${base}/${encodeURIComponent(task.id)}`), task, 201, view(task));
}

const LIST = route('viewer', {
  tags: ['tasks'],
  summary:
    'List tasks, oldest first, filtered by status and processor; each without its payload and param (get the task for those)',
  querystring: LIST_QUERY,
  response: { 200: json(TASK_LIST_SCHEMA, 'One page'), ...COMMON_ERRORS },
});

function listTasks(service: TaskService, req: FastifyRequest<{ Querystring: ListRequest }>): object {
  const page = service.list(req.query, principalOf(req));
  return { ...page, items: page.items.map(taskSummary) };
}

const GET = route('viewer', {
  tags: ['tasks'],
  summary: 'Get a task (ETag = its version)',
  params: ID_PARAMS,
  response: { 200: json(TASK_SCHEMA, 'The task'), ...COMMON_ERRORS },
});

const REPLACE = (parse: Parser<TaskInput>) =>
  route(
    'operator',
    {
      tags: ['tasks'],
      summary: 'Replace a task (our body or the old service’s); changes apply from its next fire',
      params: ID_PARAMS,
      headers: IF_MATCH_HEADERS,
      body: CREATE_BODY_SCHEMA,
      response: { 200: json(TASK_SCHEMA, 'Replaced'), ...BODY_ERRORS },
    },
    parse,
  );

const PATCH = (parse: Parser<TaskPatch>) =>
  route(
    'operator',
    {
      tags: ['tasks'],
      summary: 'Change some fields of a task (e.g. {"enabled": false})',
      params: ID_PARAMS,
      headers: IF_MATCH_HEADERS,
      body: TASK_PATCH_SCHEMA,
      response: { 200: json(TASK_SCHEMA, 'Changed'), ...BODY_ERRORS },
    },
    parse,
  );

type Change<B> = { Params: IdParams; Body: B; Headers: IfMatch };

const DELETE = route('operator', {
  tags: ['tasks'],
  summary: 'Delete a task: no further fires',
  params: ID_PARAMS,
  headers: IF_MATCH_HEADERS,
  response: { 204: noContent('Deleted'), ...BODY_ERRORS },
});

async function deleteTask(
  service: TaskService,
  req: FastifyRequest<{ Params: IdParams; Headers: IfMatch }>,
  reply: FastifyReply,
): Promise<FastifyReply> {
  await service.remove(req.params.id, req.headers['if-match'], principalOf(req));
  return reply.code(204).send();
}

const TRIGGER = route('operator', {
  tags: ['tasks'],
  summary: 'Fire a task now, once, outside its schedule: its task message goes straight to its topic',
  params: ID_PARAMS,
  response: { 202: json(TRIGGER_SCHEMA, 'Fired: the task message is in Kafka'), ...BODY_ERRORS },
});

const RUN_PARAMS = {
  type: 'object',
  required: ['id', 'taskId'],
  properties: { ...ID_PARAMS.properties, taskId: TASK_ID_PARAM },
} as const;

const CANCEL = cancelRoute('tasks', RUN_PARAMS);
const LOGS = logsRoute('tasks', RUN_PARAMS);

const BACKFILL = route(
  'operator',
  {
    tags: ['tasks'],
    summary:
      'Publish each instant of the task’s schedule in a past range that has no task yet, oldest first, through the scheduler instance that owns it (dryRun: only list them)',
    params: ID_PARAMS,
    body: BACKFILL_BODY_SCHEMA,
    response: {
      200: json(BACKFILL_SCHEMA, 'A dry run: what would be published, nothing was'),
      202: json(BACKFILL_SCHEMA, 'Published: the task messages are in Kafka'),
      ...COMMON_ERRORS,
      400: problem(
        'Invalid range: not RFC 3339, to before from or in the future, more instants than max, or none',
      ),
      409: problem('The task is paused (enabled false), or no instance of its scheduler group runs'),
      503: problem('Kafka unreachable, or the owner did not answer in time (a dry run tells what happened)'),
    },
  },
  parseBackfillBody,
);

const NEXT_QUERY = {
  type: 'object',
  additionalProperties: false,
  properties: { count: { type: 'integer', minimum: 1, maximum: 100, default: 10 } },
} as const;

const NEXT_SCHEMA = {
  type: 'object',
  required: ['timeZone', 'items'],
  properties: {
    timeZone: { type: 'string' },
    items: {
      type: 'array',
      items: {
        type: 'object',
        required: ['utc', 'local'],
        properties: {
          utc: { type: 'string', description: 'The nominal instant (the taskId’s)' },
          local: { type: 'string' },
          jitteredFor: {
            type: 'string',
            description: 'With jitter: when the fire is due (utc plus its delay)',
          },
        },
      },
    },
  },
} as const;

const NEXT = route('viewer', {
  tags: ['tasks'],
  summary: 'The next fire times of a task, in UTC and in its zone',
  params: ID_PARAMS,
  querystring: NEXT_QUERY,
  response: {
    200: json(NEXT_SCHEMA, 'Next fires (none for a paused task or a one-shot that ran)'),
    ...COMMON_ERRORS,
  },
});

function nextFires(
  service: TaskService,
  req: FastifyRequest<{ Params: IdParams; Querystring: { count: number } }>,
): object {
  return {
    timeZone: service.get(req.params.id, principalOf(req)).timeZone,
    items: service.next(req.params.id, req.query.count),
  };
}

const RUNS = route('viewer', {
  tags: ['tasks'],
  summary: 'The last 20 runs of a task, newest first, folded from taskmanager.events',
  params: ID_PARAMS,
  response: { 200: json(RUN_LIST_SCHEMA, 'Runs'), ...COMMON_ERRORS },
});

/** `/api/v1/tasks…` (docs/http-api.md#routes-with-curl). */
export function registerTaskRoutes(
  app: FastifyInstance,
  service: TaskService,
  o: TaskRoutesOptions = {},
): void {
  const maxPayload = o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const parseCreateBody = payloadLimited(createBodyParser(service), maxPayload);
  const byId = `${BASE}/:id`;
  app.post<{ Body: TaskInput }>(BASE, CREATE(parseCreateBody), (req, reply) =>
    createTask(service, req, reply),
  );
  app.get<{ Querystring: ListRequest }>(BASE, LIST, (req) => listTasks(service, req));
  app.get<{ Params: IdParams }>(byId, GET, (req, reply) =>
    sendTask(reply, service.get(req.params.id, principalOf(req))),
  );
  app.put<Change<TaskInput>>(byId, REPLACE(parseCreateBody), async (req, reply) =>
    sendTask(
      reply,
      await service.replace(req.params.id, req.body, req.headers['if-match'], principalOf(req)),
    ),
  );
  app.patch<Change<TaskPatch>>(byId, PATCH(payloadLimited(parseTaskPatch, maxPayload)), async (req, reply) =>
    sendTask(reply, await service.patch(req.params.id, req.body, req.headers['if-match'], principalOf(req))),
  );
  app.delete<{ Params: IdParams; Headers: IfMatch }>(byId, DELETE, (req, reply) =>
    deleteTask(service, req, reply),
  );
  app.post<{ Params: IdParams }>(`${byId}/trigger`, TRIGGER, async (req, reply) =>
    reply.code(202).send(await service.trigger(req.params.id, principalOf(req), traceparentOf(req))),
  );
  app.post<{ Params: IdParams; Body: BackfillRange }>(`${byId}/backfill`, BACKFILL, async (req, reply) => {
    const answer = await service.backfill(req.params.id, req.body, principalOf(req));
    return reply.code(answer.dryRun ? 200 : 202).send(answer);
  });
  app.get<{ Params: IdParams; Querystring: { count: number } }>(`${byId}/next`, NEXT, (req) =>
    nextFires(service, req),
  );
  app.get<{ Params: IdParams }>(`${byId}/runs`, RUNS, (req) => ({ items: service.runs(req.params.id) }));
  app.get<{ Params: IdParams & { taskId: string } }>(`${byId}/runs/:taskId/logs`, LOGS, (req) =>
    service.runLogs(req.params.id, req.params.taskId),
  );
  app.post<{ Params: IdParams & { taskId: string }; Body: { reason?: string } | undefined }>(
    `${byId}/runs/:taskId/cancel`,
    CANCEL,
    async (req, reply) =>
      reply
        .code(202)
        .send(await service.cancelRun(req.params.id, req.params.taskId, req.body?.reason, principalOf(req))),
  );
}
