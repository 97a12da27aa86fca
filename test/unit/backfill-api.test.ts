import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Role } from '../../src/api/auth/roles.js';
import { ControlListener } from '../../src/scheduler/control-listener.js';
import { GroupScheduler } from '../../src/scheduler/group-scheduler.js';
import { COMMANDS_TOPIC, decodeControlRecord } from '../../src/shared/codecs/scheduler-control.js';
import type { ControlReply } from '../../src/shared/codecs/scheduler-control.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import { AUDIT_TOPIC } from '../../src/shared/codecs/task-event.js';
import { silentLogger } from '../../src/shared/logger.js';
import { apiApp } from './helpers/api-app.js';
import { cronEntry } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import type { MemoryGroupMember } from './helpers/memory-group-member.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { settle } from './helpers/settle.js';

const T0 = Date.parse('2026-11-25T08:00:00.000Z');
const GROUP = 'g';
const PASSWORD = 'a-long-enough-password';
const iso = (ms: number): string => new Date(ms).toISOString();
const HOUR = 3_600_000;

/**
 * taskapi over MemoryKafka beside one scheduler instance of group GROUP (on a fake clock at T0 + 300 ms) that owns
 * the only state partition, with a file entry `nightly` (hourly, topic taskTopic) and its command listener; the API
 * holds a task of the same id in that group.
 */
async function setUp() {
  const clock = new FakeClock(T0 + 300);
  const kafka = new MemoryKafka(clock);
  kafka.partitions.set(SCHEDULER_STATE_TOPIC, 1);
  kafka.groups = [
    {
      groupId: GROUP,
      state: 'Stable',
      members: [{ memberId: 'm1', clientId: 'c', host: 'h', assignment: { [SCHEDULER_STATE_TOPIC]: [0] } }],
    },
  ];
  const scheduler = new GroupScheduler({
    kafka: kafka.client(),
    entries: [cronEntry('nightly', '0 0 * * * *', { topic: 'taskTopic' })],
    group: GROUP,
    clock,
    logger: silentLogger,
  });
  const member = kafka.members[kafka.members.length - 1] as MemoryGroupMember;
  await scheduler.start();
  member.join({ [SCHEDULER_STATE_TOPIC]: [0] });
  await settle();
  const listener = new ControlListener(kafka.client(), scheduler, silentLogger);
  await listener.start();
  const api = await apiApp({ kafka });
  const tokens = {} as Record<Role, string>;
  for (const role of ['viewer', 'operator'] as const) {
    await api.users.addUser(role, PASSWORD, role, 'test');
    tokens[role] = (await api.login(role, PASSWORD)).body.accessToken as string;
  }
  const call = async (role: Role, method: 'GET' | 'POST', url: string, payload?: object) => {
    const r = await api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${tokens[role]}` },
      ...(payload === undefined ? {} : { payload }),
    });
    return { status: r.statusCode, body: r.json<Record<string, unknown>>() };
  };
  const created = await call('operator', 'POST', '/api/v1/tasks', {
    id: 'nightly',
    processor: 'NoopProcessor',
    schedule: { cron: '0 0 * * * *' },
    group: GROUP,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const stop = async () => {
    await api.close();
    await listener.stop();
    await scheduler.stop({ deadlineMs: 0 });
  };
  return { kafka, scheduler, api, call, stop };
}

describe('POST /api/v1/tasks/{id}/backfill', () => {
  let fx: Awaited<ReturnType<typeof setUp>>;
  beforeEach(async () => {
    fx = await setUp();
  });
  afterEach(() => fx.stop());

  const url = '/api/v1/tasks/nightly/backfill';
  const hours = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => `nightly@${iso(from + i * HOUR)}`);
  const scheduledIn = (kafka: MemoryKafka) =>
    kafka
      .records('taskTopic', 0)
      .map((r) => JSON.parse(r.value?.toString('utf8') ?? '{}') as { taskId: string })
      .map((t) => t.taskId);

  it('should publish through the owner what has no task (202), list it in a dry run (200), and publish nothing twice', async () => {
    const body = { from: iso(T0 - 4 * HOUR), to: iso(T0 - HOUR) };
    const dry = await fx.call('operator', 'POST', url, { ...body, dryRun: true });
    expect(dry.status, JSON.stringify(dry.body)).toBe(200);
    expect(dry.body).toMatchObject({ dryRun: true, topic: 'taskTopic', published: hours(T0 - 4 * HOUR, 4) });
    expect(scheduledIn(fx.kafka)).toEqual([]);

    const first = await fx.call('operator', 'POST', url, body);
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(first.body).toEqual({
      message: 'published 4 task(s) of nightly to taskTopic, oldest first',
      topic: 'taskTopic',
      dryRun: false,
      published: hours(T0 - 4 * HOUR, 4),
      present: [],
      pending: [],
    });
    expect(scheduledIn(fx.kafka)).toEqual(hours(T0 - 4 * HOUR, 4));

    const wider = await fx.call('operator', 'POST', url, { from: iso(T0 - 5 * HOUR), to: iso(T0) });
    expect(wider.body).toMatchObject({
      published: [`nightly@${iso(T0 - 5 * HOUR)}`, `nightly@${iso(T0)}`],
      present: hours(T0 - 4 * HOUR, 4),
    });
    expect(scheduledIn(fx.kafka)).toEqual([
      ...hours(T0 - 4 * HOUR, 4),
      `nightly@${iso(T0 - 5 * HOUR)}`,
      `nightly@${iso(T0)}`,
    ]);

    // Audited (dry runs are not), with the user and the range.
    const audits = fx.kafka
      .records(AUDIT_TOPIC, 0)
      .map((r) => JSON.parse(r.value?.toString('utf8') ?? '{}') as Record<string, unknown>)
      .filter((e) => e.action === 'task.backfilled');
    expect(audits).toMatchObject([
      { kind: 'audit', task: 'nightly', user: 'operator', backfill: { ...body, published: 4 } },
      { kind: 'audit', task: 'nightly', user: 'operator', backfill: { published: 2 } },
    ]);
  });

  it('should answer a bad range 400 with pointers, an unknown task 404, a viewer 403', async () => {
    const bad = await fx.call('operator', 'POST', url, { from: 'yesterday', to: iso(T0), max: 0, extra: 1 });
    expect(bad.status).toBe(400);
    expect((bad.body.errors as Array<{ pointer: string }>).map((e) => e.pointer).sort()).toEqual([
      '/extra',
      '/from',
      '/max',
    ]);
    const future = await fx.call('operator', 'POST', url, { from: iso(T0 - HOUR), to: iso(T0 + HOUR) });
    expect(future.status).toBe(400);
    expect(future.body.detail).toBe(
      `to ${iso(T0 + HOUR)} is in the future (it is ${iso(T0 + 300)}): a backfill publishes only instants that have passed`,
    );
    const many = await fx.call('operator', 'POST', url, { from: iso(T0 - 10 * HOUR), to: iso(T0), max: 5 });
    expect(many.status).toBe(400);
    expect(many.body.detail).toContain('holds more than 5 instants of nightly');
    expect(
      (await fx.call('operator', 'POST', '/api/v1/tasks/nope/backfill', { from: iso(T0), to: iso(T0) }))
        .status,
    ).toBe(404);
    expect((await fx.call('viewer', 'POST', url, { from: iso(T0), to: iso(T0) })).status).toBe(403);
    expect(scheduledIn(fx.kafka)).toEqual([]);
  });

  it('should answer 409 for a paused schedule', async () => {
    await fx.scheduler.setPaused('nightly', true, 'tester');
    const paused = await fx.call('operator', 'POST', url, { from: iso(T0 - HOUR), to: iso(T0) });
    expect(paused.status).toBe(409);
    expect(paused.body.detail).toMatch(/^nightly is paused: resume it first/);
  });

  it('should answer 409 when no instance of its group runs', async () => {
    fx.kafka.groups = [];
    const none = await fx.call('operator', 'POST', url, { from: iso(T0 - HOUR), to: iso(T0) });
    expect(none.status).toBe(409);
    expect(none.body.detail).toBe(
      'no instance of scheduler group g is running: only the owner of nightly backfills it',
    );
  });

  it('should be in the OpenAPI document for operators', async () => {
    const doc = (await fx.api.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{
      paths: Record<string, Record<string, { requestBody?: unknown; responses: Record<string, unknown> }>>;
    }>();
    const op = doc.paths['/api/v1/tasks/{id}/backfill']?.post;
    expect(op?.requestBody).toBeDefined();
    expect(Object.keys(op?.responses ?? {})).toEqual(
      expect.arrayContaining(['200', '202', '400', '403', '409']),
    );
  });
});

describe('a command of a type the scheduler does not know', () => {
  it('should be refused by the owner of its entry, naming the type', async () => {
    const fx = await setUp();
    try {
      const replies: ControlReply[] = [];
      await fx.kafka.follow(COMMANDS_TOPIC, (r) => {
        const read = decodeControlRecord(r.value);
        if (read.kind === 'reply') replies.push(read.reply);
      });
      const request = {
        v: 1,
        kind: 'command',
        id: 'c-1',
        type: 'rewind',
        group: GROUP,
        scheduleIds: ['nightly'],
      };
      fx.kafka.write([
        {
          topic: COMMANDS_TOPIC,
          key: GROUP,
          value: JSON.stringify({ ...request, by: 'ann@ops', at: iso(T0) }),
        },
      ]);
      await settle();
      expect(replies).toMatchObject([
        {
          replyTo: 'c-1',
          ok: false,
          code: 'USAGE',
          message:
            'this instance does not know command "rewind" (it knows trigger, pause, resume, status, backfill): ' +
            'upgrade the instances of group g',
        },
      ]);
    } finally {
      await fx.stop();
    }
  });
});
