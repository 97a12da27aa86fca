import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errorMessage } from '../shared/errors.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import { replayDlq } from '../shared/dlq-replay.js';
import type { ReplayOutcome, ReplayRefusal, ReplaySelector } from '../shared/dlq-replay.js';
import { systemClock } from '../shared/clock.js';
import type { Clock } from '../shared/clock.js';
import { principalOf } from './auth/guard.js';
import { actorOf } from './auth/roles.js';
import type { DlqItem, DlqState } from './dlq-view.js';
import { DlqViews, existingDlq } from './dlq-views.js';
import { dlqTopicOf } from '../shared/codecs/dlq-record.js';
import type { DlqViewsOptions } from './dlq-views.js';
import { ApiError } from './problem.js';
import { BODY_ERRORS, COMMON_ERRORS, json, pageQuery, route } from './route-schemas.js';
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

const LIST_QUERY = pageQuery({
  cursor: {
    type: 'string',
    pattern: '^\\d{1,9}@\\d{1,19}$',
    description: 'nextCursor of the previous page (a position: entries added meanwhile never shift a page)',
  },
  state: {
    type: 'string',
    enum: ['waiting', 'replayed'],
    description: 'Only the entries still waiting, or only those replayed (absent: both)',
  },
} as const);

const LIST_SCHEMA = {
  type: 'object',
  required: ['topic', 'waiting', 'replayed', 'total', 'items'],
  properties: {
    topic: { type: 'string' },
    waiting: { type: 'integer', description: 'Entries waiting, in the whole DLQ' },
    replayed: { type: 'integer', description: 'Entries replayed, in the whole DLQ' },
    total: { type: 'integer', description: 'Entries matching state, in all pages' },
    items: { type: 'array', items: ENTRY_SCHEMA },
    nextCursor: { type: 'string', description: 'Pass as cursor for the next page; absent on the last page' },
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

/** Where a record is in the DLQ, as the routes show and take it. */
function positionOf(e: { partition: number; offset: string }): string {
  return `${e.partition}@${e.offset}`;
}

function shown(e: DlqItem): object {
  return {
    position: positionOf(e),
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

/** A replay answers once the view shows its markers (so the list read next shows it replayed), or after this. */
const REPLAY_SHOWN_MS = 5000;

/** What the DLQ handlers use. */
interface DlqDeps {
  kafka: KafkaClient;
  views: DlqViews;
  clock: Clock;
  audit: (what: string, user: string) => void;
  onReplayed?: ReplayAudit;
}

/** Records the entries of one replay (their positions in `dlq`, their taskIds) as done by `user`. */
export type ReplayAudit = (
  dlq: string,
  entries: Array<{ entry: string; taskId?: string }>,
  user: string,
) => Promise<void>;

const LIST = route('viewer', {
  tags: ['dlq'],
  summary:
    'Dead-lettered tasks of a task topic, by partition and offset, with reasons and original offsets, one page at a time (from a view taskapi keeps, not read per request)',
  params: TOPIC_PARAMS,
  querystring: LIST_QUERY,
  response: { 200: json(LIST_SCHEMA, 'One page of the DLQ'), ...COMMON_ERRORS },
});

type ListQuery = {
  Params: { topic: string };
  Querystring: { limit: number; cursor?: string; state?: DlqState };
};

async function list(d: DlqDeps, req: FastifyRequest<ListQuery>): Promise<object> {
  const { limit, cursor, state } = req.query;
  const page = (await d.views.view(req.params.topic)).page({
    limit,
    ...(cursor === undefined ? {} : { after: cursor }),
    ...(state === undefined ? {} : { state }),
  });
  return {
    topic: req.params.topic,
    waiting: page.waiting,
    replayed: page.replayed,
    total: page.total,
    items: page.items.map(shown),
    ...(page.next === undefined ? {} : { nextCursor: page.next }),
  };
}

const REPLAY_SCHEMA = {
  type: 'object',
  required: ['replayed', 'refused'],
  properties: {
    replayed: { type: 'array', items: ENTRY_SCHEMA },
    refused: { type: 'array', items: REFUSAL_SCHEMA },
  },
} as const;

const REPLAY = route(
  'operator',
  {
    tags: ['dlq'],
    summary:
      'Re-publish dead-lettered tasks to the DLQ’s task topic (one, by position or taskId, or all waiting); a record whose header names another topic is refused and stays waiting',
    params: TOPIC_PARAMS,
    body: REPLAY_BODY,
    response: {
      200: json(
        REPLAY_SCHEMA,
        'What was replayed (empty when nothing waiting matched), and what was refused',
      ),
      ...BODY_ERRORS,
    },
  },
  parserOf<ReplaySelector>(REPLAY_BODY),
);

type Replay = { Params: { topic: string }; Body: ReplaySelector };

async function replay(d: DlqDeps, req: FastifyRequest<Replay>): Promise<object> {
  const topic = req.params.topic;
  await existingDlq(d.kafka, topic);
  let outcome: ReplayOutcome;
  try {
    outcome = await replayDlq(d.kafka, topic, req.body);
  } catch (err) {
    throw new ApiError(503, `replay from ${topic}.dlq failed: ${errorMessage(err)}`);
  }
  const actor = actorOf(principalOf(req));
  for (const e of outcome.replayed)
    d.audit(`replayed ${topic}.dlq/${positionOf(e)} (${e.taskId ?? 'no taskId'})`, actor);
  for (const r of outcome.refused) d.audit(r.line, actor);
  await d.onReplayed?.(
    dlqTopicOf(topic),
    outcome.replayed.map((e) => ({
      entry: positionOf(e),
      ...(e.taskId === undefined ? {} : { taskId: e.taskId }),
    })),
    actor,
  );
  await (await d.views.current(topic))?.replayed(outcome.replayed.map(positionOf), d.clock, REPLAY_SHOWN_MS);
  return { replayed: outcome.replayed.map(shown), refused: outcome.refused.map(refusal) };
}

function refusal({ entry, line }: ReplayRefusal): object {
  return {
    position: positionOf(entry),
    ...(entry.taskId === undefined ? {} : { taskId: entry.taskId }),
    originalTopic: entry.originalTopic,
    detail: line,
  };
}

/** `/api/v1/dlq/{topic}…`: dead-lettered tasks with their reasons, and replays (as `taskconsumer dlq` does). */
export function registerDlqRoutes(
  app: FastifyInstance,
  kafka: KafkaClient,
  audit: (what: string, user: string) => void,
  {
    onReplayed,
    ...o
  }: Omit<DlqViewsOptions, 'kafka' | 'clock'> & { clock?: Clock; onReplayed?: ReplayAudit } = {},
): void {
  const clock = o.clock ?? systemClock;
  const views = new DlqViews({ ...o, kafka, clock });
  app.addHook('onClose', () => views.stop());
  const d: DlqDeps = { kafka, views, clock, audit, ...(onReplayed ? { onReplayed } : {}) };
  app.get<ListQuery>('/api/v1/dlq/:topic', LIST, (req) => list(d, req));
  app.post<Replay>('/api/v1/dlq/:topic/replay', REPLAY, (req) => replay(d, req));
}
