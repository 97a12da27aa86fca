import { afterEach, describe, expect, it } from 'vitest';
import type { Role } from '../../src/api/auth/roles.js';
import { dlqRecord } from '../../src/shared/codecs/dlq-record.js';
import {
  COMMANDS_TOPIC,
  decodeControlRecord,
  replyRecords,
} from '../../src/shared/codecs/scheduler-control.js';
import type { ControlReply, EntryStatus } from '../../src/shared/codecs/scheduler-control.js';
import type { InRecord } from '../../src/shared/kafka/index.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import { apiApp } from './helpers/api-app.js';
import type { ApiApp } from './helpers/api-app.js';
import { FakeClock } from './helpers/fake-clock.js';
import type { MemoryKafka } from './helpers/memory-kafka.js';

const PASSWORD = 'a-long-enough-password';
const T0 = Date.parse('2026-11-25T10:00:00.000Z');

let running: ApiApp | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

type Answer<T = Record<string, unknown>> = { status: number; body: T };
type Caller = <T = Record<string, unknown>>(
  role: Role,
  method: string,
  url: string,
  payload?: unknown,
) => Promise<Answer<T>>;

/** The real taskapi app over in-memory topics, with a user of each role, and a call as one of them. */
async function start(o: Parameters<typeof apiApp>[0] = {}): Promise<{ api: ApiApp; call: Caller }> {
  const api = (running = await apiApp(o));
  const tokens = {} as Record<Role, string>;
  for (const role of ['viewer', 'operator', 'admin'] as const) {
    await api.users.addUser(role, PASSWORD, role, 'test');
    tokens[role] = (await api.login(role, PASSWORD)).body.accessToken as string;
  }
  const call: Caller = async (role, method, url, payload) => {
    const r = await api.app.inject({
      method: method as 'GET',
      url,
      headers: { authorization: `Bearer ${tokens[role]}` },
      ...(payload === undefined ? {} : { payload: payload as object }),
    });
    return { status: r.statusCode, body: r.json() };
  };
  return { api, call };
}

/** Lets records written in memory reach their followers (each on a later turn of the event loop). */
async function settle(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
}

/** Consumer groups `topic` cost: followers started on it, and whole reads of it (a throw-away group each). */
function groupsOn(kafka: MemoryKafka, topic: string): number {
  return [...kafka.followed, ...kafka.readWhole].filter((t) => t === topic).length;
}

// ---- the DLQ ----

/** Dead-letters `n` tasks of `orders`, as the consumer does. */
async function deadLetter(kafka: MemoryKafka, n: number, from = 0): Promise<void> {
  const records = Array.from({ length: n }, (_, i) => {
    const taskId = `t-${String(from + i).padStart(4, '0')}@2026-11-25T10:00:00.000Z`;
    const failed: InRecord = {
      topic: 'orders',
      partition: 0,
      offset: String(from + i),
      key: Buffer.from(taskId.split('@')[0]!),
      value: Buffer.from(JSON.stringify({ taskId, payload: 'x'.repeat(1000) })),
      headers: { 'task-id': taskId },
      timestamp: '0',
    };
    return dlqRecord(failed, 'non-retriable', 'boom', 1, T0);
  });
  await kafka.producer().send(records);
  await settle();
}

type DlqPage = {
  waiting: number;
  replayed: number;
  total: number;
  items: Array<{ position: string; taskId: string; replayedBy?: string }>;
  nextCursor?: string;
};

describe('when viewers poll a DLQ', () => {
  it('should read it with one consumer group for all of them, not one whole read per request', async () => {
    const { api, call } = await start();
    await deadLetter(api.kafka, 20);

    // Five dashboards on the Failures page for a minute: a request each every 2 s.
    const answers: Array<Answer<DlqPage>> = [];
    for (let poll = 0; poll < 30; poll++)
      answers.push(
        ...(await Promise.all(
          ['viewer', 'viewer', 'viewer', 'operator', 'admin'].map((role) =>
            call<DlqPage>(role as Role, 'GET', '/api/v1/dlq/orders'),
          ),
        )),
      );

    expect(answers.every((a) => a.status === 200 && a.body.waiting === 20)).toBe(true);
    expect(groupsOn(api.kafka, 'orders.dlq')).toBe(1);
  });

  it('should answer one page at a time, following nextCursor to the end without repeating or skipping', async () => {
    const { api, call } = await start();
    await deadLetter(api.kafka, 250);

    const first = await call<DlqPage>('viewer', 'GET', '/api/v1/dlq/orders');
    expect([first.status, first.body.items.length, first.body.total]).toEqual([200, 100, 250]);
    const seen = [...first.body.items];
    let cursor = first.body.nextCursor;
    // Dead-lettered meanwhile: at the end, not shifting the pages.
    await deadLetter(api.kafka, 5, 250);
    while (cursor) {
      const page = await call<DlqPage>('viewer', 'GET', `/api/v1/dlq/orders?limit=100&cursor=${cursor}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items);
      cursor = page.body.nextCursor;
    }
    expect(seen.map((e) => e.position)).toEqual(Array.from({ length: 255 }, (_, i) => `0@${i}`));
    expect((await call('viewer', 'GET', '/api/v1/dlq/orders?limit=1001')).status).toBe(400);
    expect((await call('viewer', 'GET', '/api/v1/dlq/orders?cursor=nope')).status).toBe(400);
  });

  it('should show a replay in the next answer, and filter waiting from replayed', async () => {
    const { api, call } = await start();
    await deadLetter(api.kafka, 3);
    expect((await call<DlqPage>('viewer', 'GET', '/api/v1/dlq/orders')).body.waiting).toBe(3);

    const replay = await call('operator', 'POST', '/api/v1/dlq/orders/replay', { position: '0@1' });
    expect(replay.status).toBe(200);
    const after = await call<DlqPage>('viewer', 'GET', '/api/v1/dlq/orders');
    expect([after.body.waiting, after.body.replayed]).toEqual([2, 1]);
    expect(after.body.items.find((e) => e.position === '0@1')?.replayedBy).toMatch(/^0@\d+$/);
    const waiting = await call<DlqPage>('viewer', 'GET', '/api/v1/dlq/orders?state=waiting');
    expect(waiting.body.items.map((e) => e.position)).toEqual(['0@0', '0@2']);
    expect(waiting.body.total).toBe(2);

    // A task dead-lettered now shows in the next answer: the view follows the DLQ.
    await deadLetter(api.kafka, 1, 3);
    expect((await call<DlqPage>('viewer', 'GET', '/api/v1/dlq/orders')).body.waiting).toBe(3);
    // One follower for every list; the replay (operators only) read the DLQ for the records it re-publishes.
    expect(
      [api.kafka.followed, api.kafka.readWhole].map((ts) => ts.filter((t) => t === 'orders.dlq')),
    ).toEqual([['orders.dlq'], ['orders.dlq']]);
  });
});

// ---- the schedules overview ----

function entry(id: string): EntryStatus {
  return {
    id,
    source: 'file',
    spec: '0 */5 * * * *',
    timeZone: 'UTC',
    topic: 'taskTopic',
    processor: 'NoopProcessor',
    state: 'enabled',
    partition: 0,
    nextFireTimes: ['2026-11-25T10:05:00.000Z'],
  };
}

/**
 * One running instance of scheduler group `group` holding `entries`, answering commands as a taskscheduler does;
 * `statusAsked()` counts the status requests it got (each makes it send its whole list).
 */
function fakeScheduler(kafka: MemoryKafka, group: string, entries: EntryStatus[]): { statusAsked(): number } {
  kafka.groups = [
    {
      groupId: group,
      state: 'Stable',
      members: [
        {
          memberId: 'm-1',
          clientId: 'taskscheduler-42',
          host: '/10.0.0.7',
          assignment: { [SCHEDULER_STATE_TOPIC]: [0] },
        },
      ],
    },
  ];
  let asked = 0;
  const producer = kafka.producer();
  void kafka.follow(COMMANDS_TOPIC, (r) => {
    const read = decodeControlRecord(r.value);
    if (read.kind !== 'command' || read.command.group !== group) return;
    const c = read.command;
    if (c.type === 'status') asked++;
    const reply: ControlReply = {
      v: 1,
      kind: 'reply',
      replyTo: c.id,
      group,
      from: { host: 'host-a', pid: 42 },
      ok: true,
      message: c.type === 'status' ? 'ready' : `${c.type} done`,
      partitions: [0],
      ...(c.type === 'status' ? { entries } : {}),
    };
    // One record whatever its size, as before replies came in parts: the client must take it whole.
    void producer.send(replyRecords(reply, Infinity));
  });
  return { statusAsked: () => asked };
}

type ScheduleList = { items: Array<{ id: string; owner?: string }>; total: number; nextCursor?: string };

describe('when viewers poll the schedules overview', () => {
  it('should ask the schedulers at most once per refresh interval, however many viewers poll', async () => {
    const clock = new FakeClock(T0);
    const { api, call } = await start({ clock });
    const scheduler = fakeScheduler(api.kafka, 'taskscheduler-prod', [entry('a'), entry('b')]);

    // Ten dashboards on the overview for a minute: a request each every 2 s.
    for (let poll = 0; poll < 30; poll++) {
      const answers = await Promise.all(
        Array.from({ length: 10 }, () => call<ScheduleList>('viewer', 'GET', '/api/v1/schedules')),
      );
      expect(answers.map((a) => [a.status, a.body.total])).toEqual(answers.map(() => [200, 2]));
      await settle();
      clock.advance(2000);
    }

    // At most one round of status questions per 5 s (the first at once), not one per poll.
    expect(scheduler.statusAsked()).toBeGreaterThanOrEqual(1);
    expect(scheduler.statusAsked()).toBeLessThanOrEqual(60 / 5 + 1);
  });

  it('should not ask the schedulers again for every schedule asked for that exists nowhere', async () => {
    const clock = new FakeClock(T0);
    const { api, call } = await start({ clock });
    const scheduler = fakeScheduler(api.kafka, 'taskscheduler-prod', [entry('a')]);

    // A viewer asking for 30 ids that do not exist, 400 ms apart (12 s).
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) {
      statuses.push((await call('viewer', 'GET', `/api/v1/schedules/taskscheduler-prod/nope-${i}`)).status);
      await settle();
      clock.advance(400);
    }

    expect(new Set(statuses)).toEqual(new Set([404]));
    // One round at the start, then at most one per 5 s of the 12 s, one of them behind an answer.
    expect(scheduler.statusAsked()).toBeLessThanOrEqual(4);
  });

  it('should answer one page at a time, in id order, with a cursor to the next page', async () => {
    const clock = new FakeClock(T0);
    const { api, call } = await start({ clock });
    const ids = Array.from({ length: 250 }, (_, i) => `entry-${String(i).padStart(3, '0')}`);
    fakeScheduler(api.kafka, 'taskscheduler-prod', [...ids].reverse().map(entry));

    const first = await call<ScheduleList>('viewer', 'GET', '/api/v1/schedules');
    expect([first.status, first.body.items.length, first.body.total]).toEqual([200, 100, 250]);
    const seen = first.body.items.map((r) => r.id);
    let cursor = first.body.nextCursor;
    while (cursor) {
      const page = await call<ScheduleList>('viewer', 'GET', `/api/v1/schedules?limit=100&cursor=${cursor}`);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((r) => r.id));
      cursor = page.body.nextCursor;
    }
    expect(seen).toEqual(ids);

    const searched = await call<ScheduleList>('viewer', 'GET', '/api/v1/schedules?q=entry-1&limit=20');
    expect([searched.body.total, searched.body.items.length, searched.body.items[0]?.id]).toEqual([
      100,
      20,
      'entry-100',
    ]);
    expect((await call('viewer', 'GET', '/api/v1/schedules?cursor=bm9wZQ')).status).toBe(400);
  });
});

// ---- task payloads ----

type Task = { id: string; version: string; payload?: unknown; param?: string };
type Problem = { status: number; detail: string; errors: Array<{ pointer: string; detail: string }> };

describe('when a task carries a large payload', () => {
  const big = { blob: 'x'.repeat(70_000) };
  const bigBytes = JSON.stringify(big).length;

  it('should refuse it with 413 on create and change, naming its size and the limit, and write nothing', async () => {
    const { api, call } = await start();
    const made = await call<Task>('operator', 'POST', '/api/v1/tasks', {
      id: 'small',
      processor: 'NoopProcessor',
      schedule: { every: '1m' },
      payload: { n: 1 },
    });
    expect(made.status).toBe(201);
    const written = api.kafka.topics.get(TASKS_TOPIC)?.length;

    const refusals = [
      ['POST', '/api/v1/tasks', { processor: 'NoopProcessor', schedule: { every: '1m' }, payload: big }],
      ['POST', '/api/v1/tasks', { name: 'email', type: 'once', payload: big }],
      ['POST', '/api/tasks', { task_type: 'email', payload: big }],
      ['PUT', '/api/v1/tasks/small', { processor: 'NoopProcessor', schedule: { every: '1m' }, payload: big }],
      ['PATCH', '/api/v1/tasks/small', { payload: big }],
    ] as const;
    for (const [method, url, body] of refusals) {
      const r = await call<Problem>('operator', method, url, body);
      expect([method, url, r.status]).toEqual([method, url, 413]);
      expect(r.body.errors).toEqual([
        {
          pointer: '/payload',
          detail: `is ${bigBytes} bytes as JSON, over the limit of 65536 bytes (taskapi --max-payload)`,
        },
      ]);
    }
    expect(api.kafka.topics.get(TASKS_TOPIC)?.length).toBe(written);
  });

  it('should take a payload up to the limit given with --max-payload', async () => {
    const { call } = await start({ maxPayloadBytes: 1000 });
    const payload = (bytes: number) => ({ s: 'y'.repeat(bytes - '{"s":""}'.length) });
    const task = (bytes: number) => ({
      processor: 'NoopProcessor',
      schedule: { every: '1m' },
      payload: payload(bytes),
    });

    expect((await call('operator', 'POST', '/api/v1/tasks', task(1000))).status).toBe(201);
    const over = await call<Problem>('operator', 'POST', '/api/v1/tasks', task(1001));
    expect([over.status, over.body.detail]).toEqual([
      413,
      'invalid body: /payload is 1001 bytes as JSON, over the limit of 1000 bytes (taskapi --max-payload)',
    ]);
  });

  it('should leave payloads and params out of lists, and keep them in the task itself', async () => {
    const { call } = await start();
    for (let i = 0; i < 3; i++)
      expect(
        (
          await call('operator', 'POST', '/api/v1/tasks', {
            id: `t${i}`,
            processor: 'NoopProcessor',
            schedule: { every: '1m' },
            param: 'p'.repeat(5000),
            payload: { blob: 'z'.repeat(60_000) },
          })
        ).status,
      ).toBe(201);

    const list = await call<{ items: Task[]; total: number }>('viewer', 'GET', '/api/v1/tasks?limit=1000');
    expect([list.status, list.body.total]).toEqual([200, 3]);
    expect(list.body.items.map((t) => [t.id, 'payload' in t, 'param' in t])).toEqual([
      ['t0', false, false],
      ['t1', false, false],
      ['t2', false, false],
    ]);
    expect(JSON.stringify(list.body).length).toBeLessThan(5000);
    const one = await call<Task>('viewer', 'GET', '/api/v1/tasks/t1');
    expect([one.body.payload, one.body.param?.length]).toEqual([{ blob: 'z'.repeat(60_000) }, 5000]);
  });
});

describe('the OpenAPI document', () => {
  it('should describe the pages of the DLQ and the schedules, the summaries of lists, and the payload limit', async () => {
    const { api } = await start();
    type Schema = { properties: Record<string, Schema>; items: Schema };
    type Operation = {
      parameters?: Array<{ name: string; in: string }>;
      responses: Record<string, { description: string; content: Record<string, { schema: Schema }> }>;
    };
    const doc = (await api.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{
      paths: Record<string, Record<string, Operation>>;
    }>();
    const query = (path: string) =>
      (doc.paths[path]!.get!.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
    const ok = (path: string) => doc.paths[path]!.get!.responses['200']!.content['application/json']!.schema;

    expect(query('/api/v1/dlq/{topic}').sort()).toEqual(['cursor', 'limit', 'state']);
    expect(Object.keys(ok('/api/v1/dlq/{topic}').properties)).toContain('nextCursor');
    expect(query('/api/v1/schedules').sort()).toEqual(['cursor', 'limit', 'q']);
    expect(Object.keys(ok('/api/v1/schedules').properties)).toContain('nextCursor');
    const listed = Object.keys(ok('/api/v1/tasks').properties.items!.items.properties);
    expect([listed.includes('payload'), listed.includes('param'), listed.includes('status')]).toEqual([
      false,
      false,
      true,
    ]);
    expect(doc.paths['/api/v1/tasks']!.post!.responses['413']!.description).toMatch(/--max-payload/);
  });
});
