import type { FastifyInstance, FastifyReply } from 'fastify';
import { principalOf } from './auth/guard.js';
import {
  BODY_ERRORS,
  bodyValidator,
  COMMON_ERRORS,
  ID_PARAMS,
  IF_MATCH_HEADERS,
  json,
  LIST_QUERY,
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
import type { ApiTask } from './task-model.js';
import type { ListRequest, TaskService } from './task-service.js';

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

/** Sends a task with its version as the ETag. */
function sendTask(reply: FastifyReply, task: ApiTask, status = 200): FastifyReply {
  return reply.code(status).header('etag', `"${task.version}"`).send(task);
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

/** `/api/v1/tasks…` (docs/http-api.md#routes-with-curl). */
export function registerTaskRoutes(
  app: FastifyInstance,
  service: TaskService,
  o: TaskRoutesOptions = {},
): void {
  const maxPayload = o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
  const parseCreateBody = payloadLimited(createBodyParser(service), maxPayload);
  app.post<{ Body: TaskInput }>(
    BASE,
    {
      config: { access: 'operator' },
      schema: {
        tags: ['tasks'],
        summary: 'Create a task (our body, or the old service’s {name, type, period, payload})',
        body: CREATE_BODY_SCHEMA,
        response: { 201: json(TASK_SCHEMA, 'Created; stored in Kafka and read back'), ...BODY_ERRORS },
      },
      validatorCompiler: bodyValidator(parseCreateBody),
    },
    async (req, reply) => {
      const task = await service.create(req.body, principalOf(req));
      return sendTask(reply.header('location', `${BASE}/${encodeURIComponent(task.id)}`), task, 201);
    },
  );

  app.get<{ Querystring: ListRequest }>(
    BASE,
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['tasks'],
        summary:
          'List tasks, oldest first, filtered by status and processor; each without its payload and param (get the task for those)',
        querystring: LIST_QUERY,
        response: { 200: json(TASK_LIST_SCHEMA, 'One page'), ...COMMON_ERRORS },
      },
    },
    (req) => {
      const page = service.list(req.query, principalOf(req));
      return { ...page, items: page.items.map(taskSummary) };
    },
  );

  app.get<{ Params: IdParams }>(
    `${BASE}/:id`,
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['tasks'],
        summary: 'Get a task (ETag = its version)',
        params: ID_PARAMS,
        response: { 200: json(TASK_SCHEMA, 'The task'), ...COMMON_ERRORS },
      },
    },
    (req, reply) => sendTask(reply, service.get(req.params.id, principalOf(req))),
  );

  app.put<{ Params: IdParams; Body: TaskInput; Headers: IfMatch }>(
    `${BASE}/:id`,
    {
      config: { access: 'operator' },
      schema: {
        tags: ['tasks'],
        summary: 'Replace a task (our body or the old service’s); changes apply from its next fire',
        params: ID_PARAMS,
        headers: IF_MATCH_HEADERS,
        body: CREATE_BODY_SCHEMA,
        response: { 200: json(TASK_SCHEMA, 'Replaced'), ...BODY_ERRORS },
      },
      validatorCompiler: bodyValidator(parseCreateBody),
    },
    async (req, reply) =>
      sendTask(
        reply,
        await service.replace(req.params.id, req.body, req.headers['if-match'], principalOf(req)),
      ),
  );

  app.patch<{ Params: IdParams; Body: TaskPatch; Headers: IfMatch }>(
    `${BASE}/:id`,
    {
      config: { access: 'operator' },
      schema: {
        tags: ['tasks'],
        summary: 'Change some fields of a task (e.g. {"enabled": false})',
        params: ID_PARAMS,
        headers: IF_MATCH_HEADERS,
        body: TASK_PATCH_SCHEMA,
        response: { 200: json(TASK_SCHEMA, 'Changed'), ...BODY_ERRORS },
      },
      validatorCompiler: bodyValidator(payloadLimited(parseTaskPatch, maxPayload)),
    },
    async (req, reply) =>
      sendTask(
        reply,
        await service.patch(req.params.id, req.body, req.headers['if-match'], principalOf(req)),
      ),
  );

  app.delete<{ Params: IdParams; Headers: IfMatch }>(
    `${BASE}/:id`,
    {
      config: { access: 'operator' },
      schema: {
        tags: ['tasks'],
        summary: 'Delete a task: no further fires',
        params: ID_PARAMS,
        headers: IF_MATCH_HEADERS,
        response: { 204: { description: 'Deleted', type: 'null' }, ...BODY_ERRORS },
      },
    },
    async (req, reply) => {
      await service.remove(req.params.id, req.headers['if-match'], principalOf(req));
      return reply.code(204).send();
    },
  );

  app.post<{ Params: IdParams }>(
    `${BASE}/:id/trigger`,
    {
      config: { access: 'operator' },
      schema: {
        tags: ['tasks'],
        summary: 'Fire a task now, once, outside its schedule: its task message goes straight to its topic',
        params: ID_PARAMS,
        response: { 202: json(TRIGGER_SCHEMA, 'Fired: the task message is in Kafka'), ...BODY_ERRORS },
      },
    },
    async (req, reply) => reply.code(202).send(await service.trigger(req.params.id, principalOf(req))),
  );

  app.get<{ Params: IdParams; Querystring: { count: number } }>(
    `${BASE}/:id/next`,
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['tasks'],
        summary: 'The next fire times of a task, in UTC and in its zone',
        params: ID_PARAMS,
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { count: { type: 'integer', minimum: 1, maximum: 100, default: 10 } },
        },
        response: {
          200: json(
            {
              type: 'object',
              required: ['timeZone', 'items'],
              properties: {
                timeZone: { type: 'string' },
                items: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['utc', 'local'],
                    properties: { utc: { type: 'string' }, local: { type: 'string' } },
                  },
                },
              },
            },
            'Next fires (none for a paused task or a one-shot that ran)',
          ),
          ...COMMON_ERRORS,
        },
      },
    },
    (req) => ({
      timeZone: service.get(req.params.id, principalOf(req)).timeZone,
      items: service.next(req.params.id, req.query.count),
    }),
  );

  app.get<{ Params: IdParams }>(
    `${BASE}/:id/runs`,
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['tasks'],
        summary: 'The last 20 runs of a task, newest first, folded from taskmanager.events',
        params: ID_PARAMS,
        response: { 200: json(RUN_LIST_SCHEMA, 'Runs'), ...COMMON_ERRORS },
      },
    },
    (req) => ({ items: service.runs(req.params.id) }),
  );
}
