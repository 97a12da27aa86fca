import type { FastifySchema, FastifySchemaCompiler } from 'fastify';
import { Ajv } from 'ajv';
import type { Access } from './auth/roles.js';
import { ApiError, PROBLEM_CONTENT_TYPE } from './problem.js';
import { ID_PATTERN, parserOf } from './task-input.js';
import { isFinalRun, RUN_STATES } from './run-history.js';
import { MAX_CANCEL_REASON } from '../shared/codecs/cancel-request.js';
import { DROPPED_SCHEMA, RUN_LOG_LINE_SCHEMA } from '../shared/codecs/run-log.js';
import type { Parsed } from './task-input.js';
import { RUN_SCHEMA, TASK_SCHEMA, TASK_STATES } from './task-model.js';

/** Query strings, path parameters and headers arrive as text: coerced to the schema's types, every error told. */
export const paramsAjv = new Ajv({ allErrors: true, coerceTypes: 'array', useDefaults: true, strict: false });

/** An object whose fields are all required strings. */
export function requiredStrings(names: readonly string[]): object {
  return {
    type: 'object',
    required: names,
    properties: Object.fromEntries(names.map((n) => [n, { type: 'string' }])),
  };
}

/** The body of every error answer: an RFC 9457 problem document (see problem.ts). */
export const PROBLEM_SCHEMA = {
  type: 'object',
  required: ['type', 'title', 'status', 'detail'],
  properties: {
    type: { type: 'string' },
    title: { type: 'string' },
    status: { type: 'integer' },
    detail: { type: 'string' },
    instance: { type: 'string' },
    errors: { type: 'array', items: requiredStrings(['pointer', 'detail']) },
  },
} as const;

/** A response of one content type, for the route schemas (fastify serializes with it, OpenAPI shows it). */
export function json(schema: object, description: string): object {
  return { description, content: { 'application/json': { schema } } };
}

export function problem(description: string): object {
  return { description, content: { [PROBLEM_CONTENT_TYPE]: { schema: PROBLEM_SCHEMA } } };
}

/** An answer without a body (204). */
export function noContent(description: string): object {
  return { description, type: 'null' };
}

/** A list answer: `{ items: [...] }`. */
export function itemsOf(item: object): object {
  return { type: 'object', required: ['items'], properties: { items: { type: 'array', items: item } } };
}

/** The error answers every route may give. */
export const COMMON_ERRORS = {
  400: problem('Invalid request: every error, each with a JSON pointer'),
  401: problem('No bearer token, or one that is invalid, expired or revoked'),
  403: problem('The token’s user lacks the role this route needs'),
  404: problem('No such task or route'),
  503: problem('Kafka unreachable or taskapi starting: nothing was written'),
} as const;

/** …and those of routes that take a body. */
export const BODY_ERRORS = {
  ...COMMON_ERRORS,
  409: problem('The id exists, or the task changed since the ETag in If-Match'),
  413: problem('Body larger than --body-limit, or a task payload larger than --max-payload'),
  415: problem('Body not application/json'),
} as const;

export const ID_PARAMS = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', pattern: ID_PATTERN } },
} as const;

export const IF_MATCH_HEADERS = {
  type: 'object',
  properties: {
    'if-match': {
      type: 'string',
      description: 'The ETag of the version this change is based on; 409 when stale',
    },
  },
} as const;

/** The query of a paged list route: `limit` (1 to 1000, 100 by default) and the route's own parameters. */
export function pageQuery<P extends object>(properties: P) {
  return {
    type: 'object',
    additionalProperties: false,
    properties: { limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 }, ...properties },
  } as const;
}

export const LIST_QUERY = pageQuery({
  offset: { type: 'integer', minimum: 0, maximum: 1_000_000_000 },
  cursor: {
    type: 'string',
    description: 'nextCursor of the previous page (stable under concurrent writes)',
  },
  status: { type: 'string', enum: [...TASK_STATES] },
  processor: { type: 'string' },
} as const);

/** The fields a list shows of a task: all but `payload` and `param` (GET /api/v1/tasks/{id} has them). */
const { payload: _payload, param: _param, ...SUMMARY_PROPERTIES } = TASK_SCHEMA.properties;

export const TASK_SUMMARY_SCHEMA = {
  ...TASK_SCHEMA,
  description: 'A task without its payload and param (GET /api/v1/tasks/{id} has them)',
  properties: SUMMARY_PROPERTIES,
} as const;

export const TASK_LIST_SCHEMA = {
  type: 'object',
  required: ['items', 'total'],
  properties: {
    items: { type: 'array', items: TASK_SUMMARY_SCHEMA },
    total: { type: 'integer', description: 'Tasks matching the filters, in all pages' },
    nextCursor: { type: 'string', description: 'Pass as cursor for the next page; absent on the last page' },
  },
} as const;

export const RUN_LIST_SCHEMA = itemsOf(RUN_SCHEMA);

export const TRIGGER_SCHEMA = requiredStrings(['taskId', 'message']);

/**
 * A route's body validator from one of our parse functions, whose answer replaces the body: the schema in the route
 * is there for the OpenAPI document, the parse function decides (it also reports what a schema cannot check).
 */
export function bodyValidator<T>(parse: (body: unknown) => Parsed<T>): FastifySchemaCompiler<unknown> {
  return ({ schema, httpPart }) => {
    if (httpPart !== 'body') return paramsAjv.compile(schema as object);
    return (body: unknown) => {
      const r = parse(body);
      if (r.ok) return { value: r.value };
      const summary = r.errors.map((e) => `${e.pointer} ${e.detail}`).join('; ');
      return { error: new ApiError(r.status ?? 400, `invalid body: ${summary}`, r.errors) };
    };
  };
}

/** A route's options, as each routes module declares them beside its handler. */
export interface RouteSpec {
  /** Read by the guard (auth/guard.ts). */
  config: { access: Access; beforePasswordChange?: boolean };
  schema: FastifySchema;
  validatorCompiler?: FastifySchemaCompiler<unknown>;
}

/**
 * A route's options: who may call it (its access, or its whole guard config), its schema (validation, serialization,
 * the OpenAPI document) and, for a route that takes a body, the parse function that decides the body (see
 * {@link bodyValidator}).
 */
export function route<T>(
  access: Access | RouteSpec['config'],
  schema: FastifySchema,
  parse?: (body: unknown) => Parsed<T>,
): RouteSpec {
  const config = typeof access === 'string' ? { access } : access;
  return { config, schema, ...(parse ? { validatorCompiler: bodyValidator(parse) } : {}) };
}

/** A run in a path: its taskId. */
export const TASK_ID_PARAM = {
  type: 'string',
  minLength: 1,
  maxLength: 1000,
  description: 'The run: <schedule id>@<instant>, as its runs list it',
} as const;

const CANCEL_BODY = {
  type: 'object',
  additionalProperties: false,
  properties: {
    reason: {
      type: 'string',
      maxLength: MAX_CANCEL_REASON,
      description: 'Why: kept in the CANCELLED event',
    },
  },
} as const;

const CANCEL_SCHEMA = {
  type: 'object',
  required: ['taskId', 'state', 'message'],
  properties: {
    taskId: { type: 'string' },
    state: {
      type: 'string',
      enum: [...RUN_STATES.filter((s) => !isFinalRun(s)), 'NOT SEEN'],
      description: 'Where the run stood when asked (NOT SEEN: not fired yet, or fired and not seen yet)',
    },
    message: { type: 'string' },
  },
} as const;

/** `POST …/runs/{taskId}/cancel` of a schedule (an API task's, a schedule file entry's): operators. */
export function cancelRoute(tag: string, params: object): RouteSpec {
  return route(
    'operator',
    {
      tags: [tag],
      summary:
        'Cancel one run: one waiting never starts, a running one has its processor’s signal aborted (a command is killed); it ends CANCELLED. Through taskmanager.cancels, so it reaches whichever consumer holds it, also after a rebalance or restart',
      params,
      body: CANCEL_BODY,
      response: {
        202: json(CANCEL_SCHEMA, 'Requested: the request is in Kafka'),
        ...BODY_ERRORS,
        409: problem('The run ended already'),
      },
    },
    parserOf<{ reason?: string }>(CANCEL_BODY),
  );
}

const LOG_SCHEMA = {
  type: 'object',
  required: ['taskId', 'items', 'dropped', 'ended'],
  properties: {
    taskId: { type: 'string' },
    items: {
      type: 'array',
      description: 'The run’s last lines (at most 1,000 or 64 KiB), oldest first',
      items: {
        ...RUN_LOG_LINE_SCHEMA,
        required: [...RUN_LOG_LINE_SCHEMA.required, 'attempt'],
        properties: { ...RUN_LOG_LINE_SCHEMA.properties, attempt: { type: 'integer' } },
      },
    },
    dropped: {
      ...DROPPED_SCHEMA,
      description:
        'What the run logged that is not shown (older than the last 1,000 lines / 64 KiB, long lines cut)',
    },
    ended: { type: 'array', items: { type: 'integer' }, description: 'The attempts whose log ended' },
    note: {
      type: 'string',
      description:
        'Why there is nothing or less: taskmanager.logs missing or still being read, the run not kept',
    },
  },
} as const;

/** `GET …/runs/{taskId}/logs` of a schedule (an API task's, a schedule file entry's): whoever may read its runs. */
export function logsRoute(tag: string, params: object): RouteSpec {
  return route('viewer', {
    tags: [tag],
    summary:
      'The log of one run from taskmanager.logs: what its processor logged (ctx.logger, info and above) and its output (command, webhook), secrets redacted, bounded to the last 1,000 lines or 64 KiB with what was dropped counted',
    params,
    response: {
      200: json(LOG_SCHEMA, 'The run’s log (empty, with a note, when there is none)'),
      ...COMMON_ERRORS,
    },
  });
}
