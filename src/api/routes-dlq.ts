import type { FastifyInstance } from 'fastify';
import { taskTopicProblem } from '../shared/config/topic-name.js';
import { errorMessage } from '../shared/errors.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import { listDlq, replayDlq } from '../consumer/dlq-commands.js';
import type { DlqEntry, ReplayOutcome, ReplaySelector } from '../consumer/dlq-commands.js';
import { principalOf } from './auth/guard.js';
import { actorOf } from './auth/roles.js';
import { ApiError } from './problem.js';
import { BODY_ERRORS, bodyValidator, COMMON_ERRORS, json } from './route-schemas.js';
import { parserOf } from './task-input.js';

const TOPIC_PARAMS = {
  type: 'object',
  required: ['topic'],
  properties: {
    topic: {
      type: 'string',
      pattern: '^[a-zA-Z0-9._-]{1,249}$',
      description: 'The task topic (its DLQ is <topic>.dlq)',
    },
  },
} as const;

const ENTRY_SCHEMA = {
  type: 'object',
  required: ['position', 'reason', 'error', 'attempts', 'failedAt', 'original'],
  properties: {
    position: { type: 'string', description: '<partition>@<offset> in the DLQ' },
    taskId: { type: 'string' },
    key: { type: 'string' },
    reason: { type: 'string' },
    error: { type: 'string' },
    attempts: { type: 'string' },
    failedAt: { type: 'string' },
    original: {
      type: 'object',
      required: ['topic', 'partition', 'offset'],
      properties: { topic: { type: 'string' }, partition: { type: 'string' }, offset: { type: 'string' } },
    },
    replayedBy: { type: 'string', description: 'Where the replay marker is, once replayed' },
  },
} as const;

const LIST_SCHEMA = {
  type: 'object',
  required: ['topic', 'waiting', 'replayed', 'items'],
  properties: {
    topic: { type: 'string' },
    waiting: { type: 'integer' },
    replayed: { type: 'integer' },
    items: { type: 'array', items: ENTRY_SCHEMA },
  },
} as const;

const REFUSAL_SCHEMA = {
  type: 'object',
  required: ['position', 'originalTopic', 'detail'],
  properties: {
    position: { type: 'string', description: '<partition>@<offset> in the DLQ' },
    taskId: { type: 'string' },
    originalTopic: { type: 'string', description: 'The topic its dlq-original-topic header names' },
    detail: { type: 'string', description: 'Why it was not replayed, in one line' },
  },
} as const;

const REPLAY_BODY = {
  title: 'DlqReplay',
  description: 'Exactly one of: a position (<partition>@<offset>), a taskId, or all: true',
  type: 'object',
  additionalProperties: false,
  minProperties: 1,
  maxProperties: 1,
  properties: {
    position: { type: 'string', pattern: '^\\d+@\\d+$' },
    taskId: { type: 'string', minLength: 1 },
    all: { type: 'boolean', const: true },
  },
} as const;

function shown(e: DlqEntry): object {
  return {
    position: `${e.partition}@${e.offset}`,
    ...(e.taskId === undefined ? {} : { taskId: e.taskId }),
    ...(e.key === null ? {} : { key: e.key }),
    reason: e.reason,
    error: e.error,
    attempts: e.attempts,
    failedAt: e.failedAt,
    original: { topic: e.originalTopic, partition: e.originalPartition, offset: e.originalOffset },
    ...(e.replayedBy ? { replayedBy: e.replayedBy } : {}),
  };
}

/** The task topic named in a path: a legal, non-internal name whose DLQ exists (404 otherwise). */
async function entriesOf(kafka: KafkaClient, topic: string): Promise<DlqEntry[]> {
  const problem = taskTopicProblem(topic);
  if (problem) throw new ApiError(400, problem, [{ pointer: '/topic', detail: problem }]);
  try {
    return await listDlq(kafka, topic);
  } catch (err) {
    if (/does not exist/.test(errorMessage(err))) throw new ApiError(404, errorMessage(err));
    throw new ApiError(503, `cannot read ${topic}.dlq: ${errorMessage(err)}`);
  }
}

/** `/api/v1/dlq/{topic}…`: dead-lettered tasks with their reasons, and replays (as `taskconsumer dlq` does). */
export function registerDlqRoutes(
  app: FastifyInstance,
  kafka: KafkaClient,
  audit: (what: string, user: string) => void,
): void {
  app.get<{ Params: { topic: string } }>(
    '/api/v1/dlq/:topic',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['dlq'],
        summary: 'Dead-lettered tasks of a task topic, oldest first, with reasons and original offsets',
        params: TOPIC_PARAMS,
        response: { 200: json(LIST_SCHEMA, 'The DLQ'), ...COMMON_ERRORS },
      },
    },
    async (req) => {
      const entries = await entriesOf(kafka, req.params.topic);
      const waiting = entries.filter((e) => !e.replayedBy).length;
      return {
        topic: req.params.topic,
        waiting,
        replayed: entries.length - waiting,
        items: entries.map(shown),
      };
    },
  );

  app.post<{ Params: { topic: string }; Body: ReplaySelector }>(
    '/api/v1/dlq/:topic/replay',
    {
      config: { access: 'operator' },
      schema: {
        tags: ['dlq'],
        summary:
          'Re-publish dead-lettered tasks to the DLQ’s task topic (one, by position or taskId, or all waiting); a record whose header names another topic is refused and stays waiting',
        params: TOPIC_PARAMS,
        body: REPLAY_BODY,
        response: {
          200: json(
            {
              type: 'object',
              required: ['replayed', 'refused'],
              properties: {
                replayed: { type: 'array', items: ENTRY_SCHEMA },
                refused: { type: 'array', items: REFUSAL_SCHEMA },
              },
            },
            'What was replayed (empty when nothing waiting matched), and what was refused',
          ),
          ...BODY_ERRORS,
        },
      },
      validatorCompiler: bodyValidator(parserOf<ReplaySelector>(REPLAY_BODY)),
    },
    async (req) => {
      await entriesOf(kafka, req.params.topic);
      let outcome: ReplayOutcome;
      try {
        outcome = await replayDlq(kafka, req.params.topic, req.body);
      } catch (err) {
        throw new ApiError(503, `replay from ${req.params.topic}.dlq failed: ${errorMessage(err)}`);
      }
      const actor = actorOf(principalOf(req));
      for (const e of outcome.replayed)
        audit(
          `replayed ${req.params.topic}.dlq/${e.partition}@${e.offset} (${e.taskId ?? 'no taskId'})`,
          actor,
        );
      for (const r of outcome.refused) audit(r.line, actor);
      return {
        replayed: outcome.replayed.map(shown),
        refused: outcome.refused.map(({ entry, line }) => ({
          position: `${entry.partition}@${entry.offset}`,
          ...(entry.taskId === undefined ? {} : { taskId: entry.taskId }),
          originalTopic: entry.originalTopic,
          detail: line,
        })),
      };
    },
  );
}
