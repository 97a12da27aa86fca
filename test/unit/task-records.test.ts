import { describe, expect, it } from 'vitest';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { decodeTaskMessage } from '../../src/shared/codecs/task-message.js';
import {
  EVENTS_TOPIC,
  parseStatusEvent,
  parseStatusEvents,
  SCHEDULED_BATCH_HEADER,
  TASK_ID_HEADER,
} from '../../src/shared/codecs/task-event.js';
import { SCHEDULER_STATE_TOPIC, parseState, specHash } from '../../src/shared/codecs/scheduler-state.js';
import { FireEncoder } from '../../src/scheduler/task-records.js';

const entry = (over: Partial<ScheduleEntry> = {}): ScheduleEntry => ({
  id: 'invoice "daily" ü',
  spec: { kind: 'cron', cron: '0 0 6 * * *' },
  topic: 'invoices',
  timeZone: 'Europe/Berlin',
  enabled: true,
  misfire: 'fire-once',
  misfireWindowSeconds: 3600,
  processor: 'InvoiceProcessor',
  index: 0,
  ...over,
});
const origin = { host: 'h1', pid: 42, group: 'billing' };
const at = Date.parse('2026-03-01T05:00:00Z');
const firedAt = at + 3;
const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

describe('FireEncoder', () => {
  it('should encode the task message docs/messages-and-topics.md describes, with its headers', () => {
    const e = entry({ param: 'eu', payload: { amount: 12.5, note: 'line\nbreak "quoted"', tags: ['a'] } });
    const [task] = new FireEncoder('billing', 3, origin).records([{ entry: e, scheduledFor: at }], firedAt);

    expect(task?.topic).toBe('invoices');
    expect(task?.key).toBe(e.id);
    expect(decodeTaskMessage(Buffer.from(text(task?.value)))).toEqual({
      v: 1,
      taskId: `${e.id}@2026-03-01T05:00:00.000Z`,
      scheduleId: e.id,
      processor: 'InvoiceProcessor',
      param: 'eu',
      payload: { amount: 12.5, note: 'line\nbreak "quoted"', tags: ['a'] },
      scheduledFor: '2026-03-01T05:00:00.000Z',
      firedAt: '2026-03-01T05:00:00.003Z',
      scheduler: origin,
    });
    expect(task?.headers).toEqual({
      'task-id': `${e.id}@2026-03-01T05:00:00.000Z`,
      'schedule-id': e.id,
      'scheduled-for': '2026-03-01T05:00:00.000Z',
      'content-type': 'application/json',
      'schema-version': '1',
    });
  });

  it('should leave out param and payload when the entry has none', () => {
    const [task] = new FireEncoder('billing', 0, origin).records(
      [{ entry: entry(), scheduledFor: at }],
      firedAt,
    );
    const m = JSON.parse(text(task?.value)) as Record<string, unknown>;
    expect(Object.keys(m)).toEqual([
      'v',
      'taskId',
      'scheduleId',
      'processor',
      'scheduledFor',
      'firedAt',
      'scheduler',
    ]);
  });

  it('should add a SCHEDULED event per fire and one state record per entry for its latest fire', () => {
    const a = entry({ id: 'a' });
    const b = entry({ id: 'b' });
    const records = new FireEncoder('billing', 7, origin, undefined, 'per-task').records(
      [
        { entry: a, scheduledFor: at },
        { entry: b, scheduledFor: at },
        { entry: a, scheduledFor: at + 1000 },
      ],
      firedAt,
    );
    const events = records.filter((r) => r.topic === EVENTS_TOPIC);
    expect(events.map((r) => r.key)).toEqual([
      'a@2026-03-01T05:00:00.000Z',
      'b@2026-03-01T05:00:00.000Z',
      'a@2026-03-01T05:00:01.000Z',
    ]);
    expect(JSON.parse(text(events[1]?.value))).toEqual({
      v: 1,
      taskId: 'b@2026-03-01T05:00:00.000Z',
      scheduleId: 'b',
      status: 'SCHEDULED',
      at: '2026-03-01T05:00:00.003Z',
      attempt: 0,
      by: { ...origin, role: 'scheduler' },
    });
    const states = records.filter((r) => r.topic === SCHEDULER_STATE_TOPIC);
    expect(states.map((r) => [r.key, r.partition])).toEqual([
      ['billing/a', 7],
      ['billing/b', 7],
    ]);
    expect(parseState(Buffer.from(text(states[0]?.value)))).toEqual({
      lastFiredMs: at + 1000,
      specHash: specHash(a),
      paused: false,
      runs: 0,
    });
  });

  it('should write the SCHEDULED events of a transaction in batch records that stand for the per-task ones', () => {
    const entries = Array.from({ length: 2500 }, (_, i) => entry({ id: `e${i}` }));
    const fires = entries.map((e) => ({ entry: e, scheduledFor: at }));
    const perTask = new FireEncoder('billing', 7, origin, undefined, 'per-task')
      .records(fires, firedAt)
      .filter((r) => r.topic === EVENTS_TOPIC);
    const records = new FireEncoder('billing', 7, origin).records(fires, firedAt);
    const batches = records.filter((r) => r.topic === EVENTS_TOPIC);
    // Keyed by their first fire's taskId, so that they spread over the partitions as per-fire events do.
    expect(batches.map((r) => [r.key, r.headers?.[SCHEDULED_BATCH_HEADER]])).toEqual([
      ['e0@2026-03-01T05:00:00.000Z', '1000'],
      ['e1000@2026-03-01T05:00:00.000Z', '1000'],
      ['e2000@2026-03-01T05:00:00.000Z', '500'],
    ]);
    expect(batches.every((r) => r.headers?.[TASK_ID_HEADER] === undefined)).toBe(true);
    // Every other record is as it was: the task messages and the state records.
    expect(records.filter((r) => r.topic !== EVENTS_TOPIC)).toEqual(
      new FireEncoder('billing', 7, origin, undefined, 'per-task')
        .records(fires, firedAt)
        .filter((r) => r.topic !== EVENTS_TOPIC),
    );
    const expanded = batches.flatMap((r) => parseStatusEvents(Buffer.from(text(r.value)), r.headers));
    expect(expanded).toEqual(perTask.map((r) => parseStatusEvent(Buffer.from(text(r.value)))));
    expect(expanded).toHaveLength(2500);
  });

  it('should keep each batch record under 64 KiB of fires however long the ids are', () => {
    // 200 characters, most of them 3 bytes in UTF-8.
    const id = (i: number) => `${String(i).padStart(4, '0')}-${'请'.repeat(195)}`;
    const fires = Array.from({ length: 1000 }, (_, i) => ({ entry: entry({ id: id(i) }), scheduledFor: at }));
    const batches = new FireEncoder('billing', 7, origin)
      .records(fires, firedAt)
      .filter((r) => r.topic === EVENTS_TOPIC);
    expect(batches.length).toBeGreaterThan(5);
    for (const b of batches) expect(Buffer.byteLength(text(b.value))).toBeLessThanOrEqual(64 * 1024 + 200);
    const expanded = batches.flatMap((r) => parseStatusEvents(Buffer.from(text(r.value)), r.headers));
    expect(expanded.map((e) => e.scheduleId)).toEqual(fires.map((f) => f.entry.id));
    expect(new Set(batches.map((b) => b.key)).size).toBe(batches.length);
  });

  it('should write no state record for a manual fire (taskscheduler trigger)', () => {
    const records = new FireEncoder('billing', 7, origin).records(
      [{ entry: entry({ id: 'a' }), scheduledFor: at + 123, manual: true }],
      firedAt,
    );
    expect(records.map((r) => r.topic)).toEqual(['invoices', EVENTS_TOPIC]);
  });
});
