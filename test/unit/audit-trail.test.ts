import { describe, expect, it } from 'vitest';
import { AuditTrail } from '../../src/api/audit-trail.js';
import { AuditView } from '../../src/api/audit-view.js';
import type { AuditQuery } from '../../src/api/audit-view.js';
import { AUDIT_TOPIC } from '../../src/shared/codecs/task-event.js';
import { dlqRecord } from '../../src/shared/codecs/dlq-record.js';
import type { InRecord } from '../../src/shared/kafka/index.js';
import { apiAppPerTest, operatorAndViewer } from './helpers/api-app.js';
import { FakeClock } from './helpers/fake-clock.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { recordingLogger } from './helpers/recording-logger.js';
import { settle } from './helpers/settle.js';

const T0 = Date.parse('2026-12-01T09:00:00.000Z');
const iso = (s: number): string => new Date(T0 + s * 1000).toISOString();

/** An audit record of taskmanager.audit: `fields` over a task.changed of task `a` by alice at second `s`. */
function rec(partition: number, offset: number, s: number, fields: Record<string, unknown> = {}): InRecord {
  const event = {
    v: 1,
    kind: 'audit',
    action: 'task.changed',
    task: 'a',
    version: '1',
    user: 'alice',
    at: iso(s),
    from: { host: 'h', pid: 1 },
    ...fields,
  };
  return {
    topic: AUDIT_TOPIC,
    partition,
    offset: String(offset),
    key: null,
    value: Buffer.from(JSON.stringify(event)),
    headers: {},
    timestamp: '0',
  };
}

const page = (view: AuditView, q: Partial<AuditQuery> = {}) => view.page({ limit: 100, ...q });
const positions = (view: AuditView, q: Partial<AuditQuery> = {}) =>
  page(view, q).items.map((i) => i.position);

describe('the audit view of taskapi', () => {
  it('should keep only the newest `keep` events, in time order whatever the order they are read in', () => {
    const view = new AuditView(3);
    // Two partitions read one after the other: partition 1's events are older than partition 0's newest.
    view.add(rec(0, 0, 10, { task: 'a' }));
    view.add(rec(0, 1, 40, { task: 'b' }));
    view.add(rec(1, 0, 20, { task: 'a' }));
    view.add(rec(1, 1, 30, { task: 'c' }));
    expect([view.size, view.oldest]).toEqual([3, iso(20)]);
    expect(positions(view)).toEqual(['0@1', '1@1', '1@0']);
    // Older than every event kept, with the view full: not kept.
    view.add(rec(1, 2, 5, { task: 'a' }));
    expect(positions(view)).toEqual(['0@1', '1@1', '1@0']);
    // A newer one pushes out the oldest, from its task's list too.
    view.add(rec(0, 2, 50, { task: 'c' }));
    expect(positions(view)).toEqual(['0@2', '0@1', '1@1']);
    expect([positions(view, { task: 'a' }), positions(view, { task: 'c' })]).toEqual([[], ['0@2', '1@1']]);
    // Read twice (a follower that started again): kept once.
    view.add(rec(0, 2, 50, { task: 'c' }));
    expect(view.size).toBe(3);
  });

  it('should skip records that are no audit event', () => {
    const view = new AuditView(10);
    view.add({ ...rec(0, 0, 1), value: Buffer.from('not json') });
    view.add({ ...rec(0, 1, 1), value: Buffer.from(JSON.stringify({ v: 1, kind: 'status', user: 'x' })) });
    view.add({ ...rec(0, 2, 1), value: null });
    view.add(rec(0, 3, 1, { at: 'yesterday' }));
    view.add(rec(0, 4, 1));
    expect([view.size, view.skipped, positions(view)]).toEqual([1, 4, ['0@4']]);
  });

  it('should filter by task or schedule, calendar, group, actor, action and time, newest first', () => {
    const groups = new Map([['old', 'g-old']]);
    const view = new AuditView(100, (id) => groups.get(id));
    view.add(rec(0, 0, 1, { action: 'task.created', task: 'a', group: 'g1' }));
    view.add(rec(0, 1, 2, { action: 'task.changed', task: 'a', group: 'g1', user: 'alice (token t1)' }));
    view.add(rec(0, 2, 3, { action: 'task.triggered', task: 'b', group: 'g2', user: 'albert' }));
    view.add(
      rec(0, 3, 4, {
        action: 'schedule.paused',
        task: undefined,
        version: undefined,
        schedule: 'a',
        group: 'g1',
        user: 'bob',
      }),
    );
    view.add(rec(0, 4, 5, { action: 'calendar.changed', task: undefined, calendar: 'a', user: 'bob' }));
    // Written before events had a group: the task's group now.
    view.add(rec(0, 5, 6, { action: 'task.created', task: 'old', user: 'carol' }));
    view.add(
      rec(0, 6, 7, {
        action: 'dlq.replayed',
        task: undefined,
        schedule: 'b',
        dlq: 'orders.dlq',
        entry: '0@4',
        user: 'bob',
      }),
    );
    expect(positions(view)).toEqual(['0@6', '0@5', '0@4', '0@3', '0@2', '0@1', '0@0']);
    expect(positions(view, { task: 'a' })).toEqual(['0@3', '0@1', '0@0']);
    expect(positions(view, { task: 'b' })).toEqual(['0@6', '0@2']);
    expect(positions(view, { calendar: 'a' })).toEqual(['0@4']);
    expect(positions(view, { group: 'g1' })).toEqual(['0@3', '0@1', '0@0']);
    expect(positions(view, { group: 'g-old' })).toEqual(['0@5']);
    expect(positions(view, { group: 'nobody' })).toEqual([]);
    // A user's own actions, with and without a token; not those of another whose name starts alike.
    expect(positions(view, { actor: 'alice' })).toEqual(['0@1', '0@0']);
    expect(positions(view, { actor: 'al' })).toEqual([]);
    expect(positions(view, { action: 'task.created' })).toEqual(['0@5', '0@0']);
    expect(positions(view, { action: 'schedule' })).toEqual(['0@3']);
    expect(positions(view, { action: 'task.c' })).toEqual([]);
    expect(positions(view, { since: T0 + 5000 })).toEqual(['0@6', '0@5', '0@4']);
    expect(positions(view, { task: 'a', actor: 'bob', since: T0 + 4000 })).toEqual(['0@3']);
    const [first] = page(view, { task: 'old' }).items;
    expect(first).toMatchObject({
      action: 'task.created',
      task: 'old',
      user: 'carol',
      group: 'g-old',
      at: iso(6),
    });
    expect(first).not.toHaveProperty('v');
  });

  it('should page newest first with a cursor that events added meanwhile do not shift', () => {
    const view = new AuditView(100);
    for (let i = 0; i < 5; i++) view.add(rec(i % 2, i, 10 + i));
    const one = page(view, { limit: 2 });
    expect([one.items.map((i) => i.position), one.total]).toEqual([['0@4', '1@3'], 5]);
    view.add(rec(0, 9, 100));
    const two = page(view, { limit: 2, ...(one.next ? { after: one.next } : {}) });
    expect([two.items.map((i) => i.position), two.total]).toEqual([['0@2', '1@1'], 6]);
    const three = page(view, { limit: 2, ...(two.next ? { after: two.next } : {}) });
    expect([three.items.map((i) => i.position), three.next]).toEqual([['0@0'], undefined]);
  });
});

describe('the audit trail of taskapi', () => {
  it('should start without taskmanager.audit, warn once, show nothing, and follow the topic once it exists', async () => {
    const kafka = new MemoryKafka();
    kafka.missingTopics.add(AUDIT_TOPIC);
    const logger = recordingLogger();
    const clock = new FakeClock(T0);
    const trail = new AuditTrail({
      kafka: kafka.client(),
      store: { send: () => Promise.resolve() },
      logger,
      clock,
      recheckMs: 60_000,
    });
    await trail.start();
    expect([trail.status, trail.view.size]).toEqual(['no-topic', 0]);
    expect(logger.lines).toEqual([
      'topic taskmanager.audit does not exist: the audit trail (GET /api/v1/audit, the dashboard) is empty and changes are not audited until it is created with scripts/create-topics.sh',
    ]);
    // Requests look again, at most once a minute, and say nothing more while it is still missing.
    clock.advance(60_000);
    trail.poke();
    await settle();
    expect([kafka.followed, logger.lines.length]).toEqual([[], 1]);
    // Created, and written to: the next request past the minute starts following it.
    kafka.missingTopics.delete(AUDIT_TOPIC);
    kafka.write([{ topic: AUDIT_TOPIC, key: 'a', value: rec(0, 0, 1).value!.toString() }]);
    trail.poke();
    await settle();
    expect(kafka.followed).toEqual([]);
    clock.advance(60_000);
    trail.poke();
    await settle();
    expect([kafka.followed, trail.status, trail.view.size]).toEqual([[AUDIT_TOPIC], 'current', 1]);
    expect(logger.lines[1]).toBe('taskmanager.audit exists now: the audit trail follows it');
    await trail.stop();
  });

  it('should read each partition from `keep` records before its end', async () => {
    const kafka = new MemoryKafka();
    kafka.partitions.set(AUDIT_TOPIC, 2);
    for (let i = 0; i < 5; i++)
      for (const partition of [0, 1])
        kafka.write([{ topic: AUDIT_TOPIC, key: null, partition, value: rec(0, 0, i).value!.toString() }]);
    const trail = new AuditTrail({
      kafka: kafka.client(),
      store: { send: () => Promise.resolve() },
      logger: recordingLogger(),
      clock: new FakeClock(T0),
      keep: 2,
    });
    await trail.start();
    await settle();
    // Partitions 0 and 1 each from offset 3: four records read, the newest two kept.
    expect([trail.view.skipped, positions(trail.view)]).toEqual([0, ['1@4', '0@4']]);
    await trail.stop();
  });
});

describe('GET /api/v1/audit (in memory Kafka)', () => {
  const apps = apiAppPerTest();

  it('should show who created, paused, triggered a task and replayed its run, to viewers, filtered and paged', async () => {
    const api = await apps.open();
    const [op, viewer] = await operatorAndViewer(api);
    const call = (token: string | null, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) =>
      api.app.inject({
        method,
        url,
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ...(payload ? { payload } : {}),
      });
    const created = await call(op, 'POST', '/api/v1/tasks', {
      id: 'nightly',
      processor: 'p',
      schedule: { cron: '0 0 2 * * *' },
    });
    expect(created.statusCode).toBe(201);
    expect((await call(op, 'PATCH', '/api/v1/tasks/nightly', { enabled: false })).statusCode).toBe(200);
    const fired = await call(op, 'POST', '/api/v1/tasks/nightly/trigger');
    expect(fired.statusCode).toBe(202);
    const taskId = fired.json<{ taskId: string }>().taskId;
    // Its run dead-lettered, and replayed by the operator.
    api.kafka.write([
      {
        ...dlqRecord(
          {
            topic: 'taskTopic',
            partition: 0,
            offset: '7',
            key: Buffer.from('nightly'),
            value: Buffer.from('{}'),
            headers: { 'task-id': taskId },
            timestamp: '0',
          },
          'non-retriable',
          'boom',
          1,
          0,
        ),
        topic: 'taskTopic.dlq',
      },
    ]);
    expect((await call(op, 'POST', '/api/v1/dlq/taskTopic/replay', { all: true })).statusCode).toBe(200);
    await settle();

    type Page = {
      items: Array<Record<string, unknown>>;
      total: number;
      nextCursor?: string;
      status: string;
      kept: number;
      keep: number;
    };
    const read = async (query: string, token: string | null = viewer) => {
      const r = await call(token, 'GET', `/api/v1/audit${query}`);
      return { status: r.statusCode, body: r.json<Page>() };
    };
    const all = await read('?task=nightly');
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ total: 4, status: 'current', keep: 10_000 });
    expect(all.body.items.map((i) => [i.action, i.user, i.group])).toEqual([
      ['dlq.replayed', 'op', 'taskscheduler-api'],
      ['task.triggered', 'op', 'taskscheduler-api'],
      ['task.changed', 'op', 'taskscheduler-api'],
      ['task.created', 'op', 'taskscheduler-api'],
    ]);
    expect(all.body.items[0]).toMatchObject({ dlq: 'taskTopic.dlq', taskId, schedule: 'nightly' });
    expect(all.body.items[1]).toMatchObject({ taskId });
    expect(all.body.items[2]).toMatchObject({ changed: ['enabled'], enabled: false });
    // Paged one at a time, the cursor walks them all in the same order.
    const walked: unknown[] = [];
    let cursor: string | undefined;
    do {
      const r = await read(`?task=nightly&limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      walked.push(...r.body.items.map((i) => i.action));
      cursor = r.body.nextCursor;
    } while (cursor);
    expect(walked).toEqual(all.body.items.map((i) => i.action));
    expect((await read('?action=task.changed&group=taskscheduler-api')).body.items).toHaveLength(1);
    expect((await read('?actor=view')).body.total).toBe(0);
    expect((await read('?group=another-group')).body.total).toBe(0);
    expect((await read('?since=2999-01-01T00:00:00Z')).body.total).toBe(0);
    // Refused: a bad date, a made-up cursor, no token.
    const bad = await read('?since=yesterday');
    expect([bad.status, (bad.body as unknown as { detail: string }).detail]).toEqual([
      400,
      'since "yesterday" is not an RFC 3339 date-time',
    ]);
    expect((await read('?cursor=bm9wZQ')).status).toBe(400);
    expect((await read('', null)).status).toBe(401);
    const doc = (await api.app.inject({ method: 'GET', url: '/api/openapi.json' })).json<{ paths: object }>();
    expect(Object.keys(doc.paths)).toContain('/api/v1/audit');
  });
});
