import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/shared/logger.js';
import type { InRecord, OutRecord } from '../../src/shared/kafka/index.js';
import {
  EVENTS_TOPIC,
  SCHEDULED_BATCH_HEADER,
  scheduledBatchRecords,
  scheduledEvent,
  statusEventRecord,
} from '../../src/shared/codecs/task-event.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { parseDefinition } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition } from '../../src/shared/tasks/definition.js';
import {
  BASE_HEADER,
  foldTaskRecord,
  OP_HEADER,
  VERSION_HEADER,
  WRITER_HEADER,
} from '../../src/shared/tasks/task-log.js';
import type { TaskLogOutcome } from '../../src/shared/tasks/task-log.js';
import { TaskView } from '../../src/api/task-view.js';
import { RunHistory } from '../../src/api/run-history.js';
import {
  inputOfLegacyV1,
  parseLegacyTask,
  parseLegacyV1,
  parseTaskInput,
  parseTaskPatch,
} from '../../src/api/task-input.js';
import { nextFires, nextRunOf, toApiTask } from '../../src/api/task-model.js';
import { callApi } from '../../src/api/call-command.js';
import { taskDefinition } from './helpers/entries.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');

function def(id: string, over: Partial<TaskDefinition> = {}): TaskDefinition {
  return taskDefinition(id, new Date(T0).toISOString(), over);
}

/** A tiny log: records get offsets in order (one partition), like Kafka would give them. */
class Log {
  readonly records: InRecord[] = [];
  append(id: string, value: TaskDefinition | null, headers: Record<string, string> = {}): string {
    const offset = String(this.records.length);
    this.records.push({
      topic: 'taskmanager.tasks',
      partition: 0,
      offset,
      key: Buffer.from(id),
      value: value === null ? null : Buffer.from(JSON.stringify(value)),
      headers,
      timestamp: '0',
    });
    return offset;
  }
  /** What compaction keeps: the last record of each key. */
  compacted(): InRecord[] {
    const last = new Map<string, InRecord>();
    for (const r of this.records) last.set(r.key!.toString(), r);
    return [...last.values()].sort((a, b) => Number(a.offset) - Number(b.offset));
  }
}

function viewOf(records: InRecord[]): { view: TaskView; outcomes: Map<string, TaskLogOutcome> } {
  const outcomes = new Map<string, TaskLogOutcome>();
  const view = new TaskView(silentLogger, (r, o) => outcomes.set(r.offset, o));
  for (const r of records) view.onTaskRecord(r);
  view.seal();
  return { view, outcomes };
}

describe('when two writers race on taskmanager.tasks', () => {
  it('should accept the first update based on a version and reject the second, on every reader alike', () => {
    const log = new Log();
    const v0 = log.append('a', def('a'), { [OP_HEADER]: 'create' });
    const first = log.append('a', def('a', { name: 'first' }), { [OP_HEADER]: 'update', [BASE_HEADER]: v0 });
    const second = log.append('a', def('a', { name: 'second' }), {
      [OP_HEADER]: 'update',
      [BASE_HEADER]: v0,
      [WRITER_HEADER]: 'w',
    });
    const { view, outcomes } = viewOf(log.records);
    expect(view.get('a')?.def.name).toBe('first');
    expect(view.get('a')?.version).toBe(first);
    expect(outcomes.get(second)?.kind).toBe('rejected');
    expect(view.unrepaired.has('a')).toBe(true);
  });

  it('should reject a second create of the same id', () => {
    const log = new Log();
    log.append('a', def('a', { name: 'one' }), { [OP_HEADER]: 'create' });
    log.append('a', def('a', { name: 'two' }), { [OP_HEADER]: 'create' });
    expect(viewOf(log.records).view.get('a')?.def.name).toBe('one');
  });

  it('should keep the winner after compaction once the loser appended its repair', () => {
    const log = new Log();
    const v0 = log.append('a', def('a'), { [OP_HEADER]: 'create' });
    const won = log.append('a', def('a', { name: 'won' }), { [OP_HEADER]: 'update', [BASE_HEADER]: v0 });
    log.append('a', def('a', { name: 'lost' }), { [OP_HEADER]: 'update', [BASE_HEADER]: v0 });
    log.append('a', def('a', { name: 'won' }), { [OP_HEADER]: 'repair', [VERSION_HEADER]: won });
    const live = viewOf(log.records).view;
    const rebuilt = viewOf(log.compacted()).view;
    expect(live.unrepaired.has('a')).toBe(false);
    expect(rebuilt.get('a')).toEqual(live.get('a'));
    expect(rebuilt.get('a')?.version).toBe(won);
    // A client holding the ETag from before compaction can still write on top of it.
    expect(
      foldTaskRecord(rebuilt.keyState('a'), {
        offset: '9',
        value: Buffer.from('{}'),
        headers: { [OP_HEADER]: 'update', [BASE_HEADER]: won },
      }).kind,
    ).toBe('put');
  });

  it('should reject a change to a task deleted meanwhile, and allow creating it again', () => {
    const log = new Log();
    const v0 = log.append('a', def('a'), { [OP_HEADER]: 'create' });
    log.append('a', null, { [OP_HEADER]: 'delete', [BASE_HEADER]: v0 });
    log.append('a', def('a', { name: 'late' }), { [OP_HEADER]: 'update', [BASE_HEADER]: v0 });
    expect(viewOf(log.records).view.get('a')).toBeUndefined();
    log.append('a', def('a', { name: 'again' }), { [OP_HEADER]: 'create' });
    expect(viewOf(log.records).view.get('a')?.def.name).toBe('again');
  });

  it('should apply records without headers (an operator with kcat) unconditionally', () => {
    const log = new Log();
    log.append('a', def('a'), { [OP_HEADER]: 'create' });
    log.append('a', def('a', { name: 'kcat' }));
    expect(viewOf(log.records).view.get('a')?.def.name).toBe('kcat');
  });
});

describe('when listing tasks page by page', () => {
  const at = (s: number) => new Date(T0 + s * 1000).toISOString();

  it('should return every task exactly once in (createdAt, id) order though tasks are added and removed between pages', () => {
    const log = new Log();
    for (let i = 0; i < 25; i++)
      log.append(`t${String(i).padStart(2, '0')}`, def(`t${i}`, { createdAt: at(i) }));
    // ids are the keys; definitions must carry the same id
    const records = log.records.map((r) => {
      const id = r.key!.toString();
      const d = JSON.parse(r.value!.toString()) as TaskDefinition;
      return { ...r, value: Buffer.from(JSON.stringify({ ...d, id })) };
    });
    const { view } = viewOf(records);
    const seen: string[] = [];
    let page = view.list({ limit: 10 });
    seen.push(...page.items.map((t) => t.def.id));
    // Between pages: one new task (sorts last), one deletion of an already-seen task.
    view.onTaskRecord({
      ...records[0]!,
      offset: '100',
      key: Buffer.from('zz'),
      value: Buffer.from(JSON.stringify(def('zz', { createdAt: at(99) }))),
    });
    view.onTaskRecord({ ...records[0]!, offset: '101', value: null });
    while (page.last) {
      page = view.list({ limit: 10, after: page.last });
      seen.push(...page.items.map((t) => t.def.id));
    }
    const expected = [...Array.from({ length: 25 }, (_, i) => `t${String(i).padStart(2, '0')}`), 'zz'];
    expect(seen).toEqual(expected);
    expect(view.list({ limit: 1 }).total).toBe(25);
  });

  it('should filter by status and processor and count only the matches', () => {
    const log = new Log();
    log.append('a', def('a', { processor: 'email' }));
    log.append('b', def('b', { enabled: false }));
    log.append('c', def('c'));
    const { view } = viewOf(log.records);
    expect(view.list({ limit: 10, processor: 'email' }).items.map((t) => t.def.id)).toEqual(['a']);
    const paused = view.list({ limit: 10, status: 'PAUSED' });
    expect([paused.total, paused.items.map((t) => t.def.id)]).toEqual([1, ['b']]);
  });
});

describe('when taskapi reads the records of taskmanager.events', () => {
  const rec = (r: OutRecord, offset: number): InRecord => ({
    topic: r.topic,
    partition: 0,
    offset: String(offset),
    key: r.key === null ? null : Buffer.from(r.key),
    value: r.value === null ? null : Buffer.from(r.value),
    headers: r.headers ?? {},
    timestamp: String(T0),
  });
  const by = { host: 's1', pid: 9, group: 'g', role: 'scheduler' as const };
  const ids = ['a@2026-11-22T10:00:00.000Z', 'b@2026-11-22T10:00:00.000Z'];

  it('should fold each fire of a SCHEDULED batch as the per-task event would be folded', () => {
    const batched = new TaskView(silentLogger);
    const at = new Date(T0 + 3).toISOString();
    const tasks = ids.map((id) => [JSON.stringify(id), JSON.stringify(id.split('@')[0])] as const);
    const [batch] = scheduledBatchRecords(at, JSON.stringify(by), tasks);
    expect(batched.onEventRecord(rec(batch!, 0)).map((e) => e.taskId)).toEqual(ids);
    const perTask = new TaskView(silentLogger);
    ids.forEach((id, i) =>
      perTask.onEventRecord(
        rec(statusEventRecord(scheduledEvent({ taskId: id, scheduleId: id.split('@')[0]! }, at, by)), i),
      ),
    );
    for (const s of ['a', 'b']) {
      expect(batched.runs.runs(s)).toEqual(perTask.runs.runs(s));
      expect(batched.runs.latest(s)).toMatchObject({ state: 'QUEUED', firedAt: at });
    }
  });

  it('should skip audit events of earlier releases and anything unreadable without a word', () => {
    const view = new TaskView(silentLogger);
    const audit = { topic: EVENTS_TOPIC, key: 'a', value: '{"v":1,"kind":"audit","action":"task.created"}' };
    const garbage = {
      topic: EVENTS_TOPIC,
      key: 'x',
      value: 'not json',
      headers: { [SCHEDULED_BATCH_HEADER]: '2' },
    };
    expect(view.onEventRecord(rec(audit, 0))).toEqual([]);
    expect(view.onEventRecord(rec(garbage, 1))).toEqual([]);
    expect([...view.runs.scheduleIds()]).toEqual([]);
  });
});

describe('when folding status events into runs', () => {
  const event = (
    taskId: string,
    status: StatusEvent['status'],
    extra: Partial<StatusEvent> = {},
  ): StatusEvent => ({
    v: 1,
    taskId,
    scheduleId: taskId.split('@')[0]!,
    status,
    at: new Date(T0).toISOString(),
    attempt: 1,
    by: { host: 'h', pid: 1, role: 'consumer' },
    ...extra,
  });

  it('should follow a run from queued through a retry to dead-lettered', () => {
    const h = new RunHistory();
    const id = 'a@2026-11-22T10:00:00.000Z';
    h.fold(event(id, 'SCHEDULED'));
    expect(h.latest('a')?.state).toBe('QUEUED');
    h.fold(event(id, 'EXECUTING'));
    h.fold(event(id, 'FAILED', { error: 'boom' }));
    expect(h.latest('a')?.state).toBe('RETRYING');
    h.fold(event(id, 'EXECUTING', { attempt: 2 }));
    h.fold(event(id, 'FAILED', { attempt: 2, final: true, error: 'boom', dlqReason: 'attempts-exhausted' }));
    expect(h.latest('a')).toMatchObject({
      state: 'FAILED',
      attempts: 2,
      dlqReason: 'attempts-exhausted',
      error: 'boom',
    });
  });

  it('should keep only the newest runs, newest first', () => {
    const h = new RunHistory(3);
    for (let s = 0; s < 5; s++) h.fold(event(`a@2026-11-22T10:00:0${s}.000Z`, 'FINISHED'));
    expect(h.runs('a').map((r) => r.scheduledFor)).toEqual([
      '2026-11-22T10:00:04.000Z',
      '2026-11-22T10:00:03.000Z',
      '2026-11-22T10:00:02.000Z',
    ]);
    h.fold(event('a@2026-11-22T10:00:00.000Z', 'EXECUTING'));
    expect(h.runs('a')).toHaveLength(3);
  });
});

describe('when reading a request body', () => {
  const errors = (r: { ok: boolean; errors?: Array<{ pointer: string; detail: string }> }) =>
    r.ok ? [] : r.errors!.map((e) => `${e.pointer} ${e.detail}`);

  it('should list every problem at once, each at its field', () => {
    expect(
      errors(
        parseTaskInput({
          processor: 5,
          schedule: { cron: '61 * * * *' },
          timeZone: 'Mars/Base',
          extra: true,
        }),
      ),
    ).toEqual([
      '/extra is not a known field',
      '/processor must be string',
      '/schedule/cron minute must be 0-59 (got 61)',
      '/timeZone "Mars/Base" is not an IANA time zone',
    ]);
  });

  it('should say plainly when a schedule has none or two kinds', () => {
    expect(errors(parseTaskInput({ processor: 'p', schedule: {} }))).toEqual([
      '/schedule must have exactly one of runAt, cron, every',
    ]);
    expect(errors(parseTaskInput({ processor: 'p', schedule: { cron: '* * * * *', every: '5s' } }))).toEqual([
      '/schedule must have exactly one of runAt, cron, every (has cron, every)',
    ]);
  });

  it('should refuse an interval below 1 s and a runAt that is not RFC 3339', () => {
    expect(errors(parseTaskInput({ processor: 'p', schedule: { every: '500ms' } }))).toEqual([
      '/schedule/every is below the minimum interval of 1s',
    ]);
    expect(errors(parseTaskInput({ processor: 'p', schedule: { runAt: '2026-02-30T10:00:00Z' } }))).toEqual([
      '/schedule/runAt is not an RFC 3339 instant like 2026-12-01T09:00:00Z',
    ]);
    expect(errors(parseLegacyTask({ task_type: 'email', run_at: 'tomorrow' }))).toEqual([
      '/run_at is not an RFC 3339 instant like 2026-02-20T10:00:00Z',
    ]);
  });

  it('should refuse intervals and delays a date cannot hold, and internal topics, without a 500', () => {
    expect(errors(parseTaskInput({ processor: 'p', schedule: { every: '2400000000h' } }))).toEqual([
      '/schedule/every is above the maximum of 87600h (10 years)',
    ]);
    expect(errors(parseLegacyV1({ name: 'email', type: 'once', period: '2400000000h' }))).toEqual([
      '/period is above the maximum of 87600h (10 years)',
    ]);
    const stored = (topic: string) => parseDefinition(Buffer.from(JSON.stringify({ ...def('x'), topic })));
    expect(stored('taskmanager.users')).toEqual({
      problem: 'topic: taskmanager.users is an internal topic (taskmanager.*, __*, *.dlq), not a task topic',
    });
    expect(stored('__consumer_offsets')).toHaveProperty('problem');
    expect(stored('orders.dlq')).toHaveProperty('problem');
    expect(stored('orders')).toHaveProperty('def');
  });

  it('should accept what the cron parser accepts, and never refuse without saying why', () => {
    expect(parseTaskInput({ processor: 'p', schedule: { cron: '@daily' } }).ok).toBe(true);
    const bad = parseTaskInput({ processor: 'p', schedule: { cron: '' } });
    expect(bad.ok).toBe(false);
    expect(errors(bad).length).toBeGreaterThan(0);
  });

  it('should take the old services’ bodies as they are', () => {
    const v1 = parseLegacyV1({ name: 'email', type: 'recurring', period: '5s', payload: { to: 'a@b' } });
    expect(v1.ok && inputOfLegacyV1(v1.value, T0)).toEqual({
      name: 'email',
      processor: 'email',
      schedule: { every: '5s' },
      payload: { to: 'a@b' },
    });
    const once = parseLegacyV1({ name: 'email', type: 'once', period: '10s' });
    expect(once.ok && inputOfLegacyV1(once.value, T0).schedule).toEqual({
      runAt: '2026-11-22T10:00:10.000Z',
    });
    expect(errors(parseLegacyV1({ name: 'email', type: 'recurring' }))).toEqual([
      '/period is required for a recurring task',
    ]);
    expect(parseLegacyTask({ task_type: 'email', payload: {}, run_at: '2026-02-20T10:00:00Z' }).ok).toBe(
      true,
    );
  });

  it('should refuse an empty patch', () => {
    expect(errors(parseTaskPatch({}))).toEqual(['/ must NOT have fewer than 1 properties']);
    expect(parseTaskPatch({ enabled: false }).ok).toBe(true);
  });
});

describe('when showing a task’s next fires', () => {
  it('should list them in UTC and in its zone, across a DST change', () => {
    const d = def('c', { schedule: { cron: '0 30 2 * * *' }, timeZone: 'Europe/Berlin' });
    const at = Date.parse('2026-03-27T12:00:00Z');
    expect(nextFires(d, undefined, at, 3)).toEqual([
      { utc: '2026-03-28T01:30:00.000Z', local: '2026-03-28 02:30:00 CET' },
      // 29 March: 02:30 does not exist; the first instant after the gap.
      { utc: '2026-03-29T01:00:00.000Z', local: '2026-03-29 03:00:00 CEST' },
      { utc: '2026-03-30T00:30:00.000Z', local: '2026-03-30 02:30:00 CEST' },
    ]);
    expect(nextFires({ ...d, enabled: false }, undefined, at, 3)).toEqual([]);
  });
});

describe('when showing a task', () => {
  it('should give a one-shot its time until it ran, and an interval its next multiple from creation', () => {
    const once = def('o', { schedule: { runAt: '2026-11-22T09:00:00Z' } });
    expect(nextRunOf(once, undefined, T0)).toBe(Date.parse('2026-11-22T09:00:00Z'));
    expect(
      toApiTask(once, '3', { taskId: 'o@x', scheduledFor: 'x', state: 'FINISHED', attempts: 1 }, T0),
    ).toMatchObject({
      status: 'FINISHED',
      legacyStatus: 'COMPLETED',
      version: '3',
    });
    expect(nextRunOf(def('e'), undefined, T0 + 7000)).toBe(T0 + 10_000);
    expect(toApiTask(def('p', { enabled: false }), '1', undefined, T0)).toMatchObject({
      status: 'PAUSED',
      legacyStatus: 'PENDING',
    });
  });
});

describe('when calling taskapi from the shell', () => {
  it('should refuse a path that would send the token to another host', async () => {
    await expect(
      callApi('GET', '//evil.example/x', { url: 'http://127.0.0.1:9', token: 't' }),
    ).rejects.toThrow(/the path is one on taskapi/);
  });
});
