import type { FastifyInstance } from 'fastify';
import { principalOf } from './auth/guard.js';
import { BODY_ERRORS, COMMON_ERRORS, ID_PARAMS, json, route } from './route-schemas.js';
import {
  DEFAULT_MAX_PAYLOAD_BYTES,
  inputOfLegacyTask,
  LEGACY_TASK_SCHEMA,
  parseLegacyTask,
  payloadLimited,
} from './task-input.js';
import type { Parsed, TaskInput } from './task-input.js';
import { RUN_SCHEMA, TASK_STATES } from './task-model.js';
import type { ApiTask } from './task-model.js';
import { createTask } from './routes-tasks.js';
import type { TaskRoutesOptions } from './routes-tasks.js';
import type { TaskService } from './task-service.js';

/** A task the way the old `/api/tasks` service showed it, with our status beside its own. */
const LEGACY_TASK_VIEW = {
  type: 'object',
  required: ['id', 'task_type', 'status', 'state', 'created_at', 'updated_at'],
  properties: {
    id: { type: 'string' },
    task_type: { type: 'string' },
    payload: {},
    run_at: { type: 'string' },
    status: { type: 'string', enum: ['PENDING', 'QUEUED', 'RUNNING', 'COMPLETED', 'FAILED', 'CANCELLED'] },
    state: { type: 'string', enum: [...TASK_STATES], description: 'The status in taskapi’s own words' },
    created_at: { type: 'string' },
    updated_at: { type: 'string' },
    last_run: RUN_SCHEMA,
  },
} as const;

function legacyView(t: ApiTask): object {
  const runAt = 'runAt' in t.schedule ? t.schedule.runAt : t.nextRunAt;
  return {
    id: t.id,
    task_type: t.processor,
    ...(t.payload === undefined ? {} : { payload: t.payload }),
    ...(runAt === undefined ? {} : { run_at: runAt }),
    status: t.legacyStatus,
    state: t.status,
    created_at: t.createdAt,
    updated_at: t.updatedAt,
    ...(t.lastRun ? { last_run: t.lastRun } : {}),
  };
}

const CREATE = (parse: (body: unknown) => Parsed<TaskInput>) =>
  route(
    'operator',
    {
      tags: ['compat'],
      summary: 'Create a one-shot task: {task_type, payload, run_at} (run_at absent: at once)',
      body: LEGACY_TASK_SCHEMA,
      response: { 201: json(LEGACY_TASK_VIEW, 'Created'), ...BODY_ERRORS },
    },
    parse,
  );

const GET = route('viewer', {
  tags: ['compat'],
  summary: 'Get a task in the old service’s shape',
  params: ID_PARAMS,
  response: { 200: json(LEGACY_TASK_VIEW, 'The task'), ...COMMON_ERRORS },
});

/** `/api/tasks…`: the one-shot task service we replace, its request body unmodified (docs/http-api.md#routes-with-curl). */
export function registerLegacyRoutes(
  app: FastifyInstance,
  service: TaskService,
  o: TaskRoutesOptions = {},
): void {
  const parse = payloadLimited((body) => {
    const r = parseLegacyTask(body);
    return r.ok ? { ok: true, value: inputOfLegacyTask(r.value, service.now()) } : r;
  }, o.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES);
  app.post<{ Body: TaskInput }>('/api/tasks', CREATE(parse), (req, reply) =>
    createTask(service, req, reply, '/api/tasks', legacyView),
  );
  app.get<{ Params: { id: string } }>('/api/tasks/:id', GET, (req) =>
    legacyView(service.get(req.params.id, principalOf(req))),
  );
}
