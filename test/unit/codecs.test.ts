import { describe, expect, it } from 'vitest';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import type { ScheduleSpec } from '../../src/shared/schedule/spec.js';
import { cronEntry } from './helpers/entries.js';
import { dlqEntryOf, dlqRecord } from '../../src/shared/codecs/dlq-record.js';
import type { InRecord, OutRecord } from '../../src/shared/kafka/index.js';
import {
  decodeControlRecord,
  replyRecords,
  controlRequestRecord,
} from '../../src/shared/codecs/scheduler-control.js';
import type { ControlReply, ControlRequest } from '../../src/shared/codecs/scheduler-control.js';
import {
  encodeState,
  firedState,
  parseState,
  pauseStateValue,
  stateRecord,
} from '../../src/shared/codecs/scheduler-state.js';
import {
  EVENTS_TOPIC,
  parseStatusEvent,
  parseStatusEvents,
  SCHEDULED_BATCH_HEADER,
  scheduledEvent,
  statusEventRecord,
} from '../../src/shared/codecs/task-event.js';
import { decodeTaskMessage, taskMessageOf, taskRecord } from '../../src/shared/codecs/task-message.js';

/** An entry of `spec` on topic `invoices` (Europe/Berlin, InvoiceProcessor). */
const entry = (id: string, spec: ScheduleSpec, over: Partial<ScheduleEntry> = {}): ScheduleEntry =>
  cronEntry(id, '', {
    spec,
    topic: 'invoices',
    timeZone: 'Europe/Berlin',
    processor: 'InvoiceProcessor',
    ...over,
  });
const at = Date.parse('2026-03-01T05:00:00Z');
const text = (v: OutRecord['value'] | undefined): string =>
  Buffer.isBuffer(v) ? v.toString('utf8') : String(v);
const bytes = (v: OutRecord['value'] | undefined): Buffer => Buffer.from(text(v), 'utf8');

/** What the typed encoders give for one fire of `e`: task message, SCHEDULED event, state record. */
function typed(e: ScheduleEntry, scheduledFor: number, firedAt: number, group: string, partition: number) {
  const scheduler = { host: 'h1', pid: 42, group };
  const task = taskMessageOf(
    { scheduleId: e.id, processor: e.processor, param: e.param, payload: e.payload },
    scheduledFor,
    firedAt,
    scheduler,
  );
  return [
    taskRecord(e.topic, task),
    statusEventRecord(scheduledEvent(task, task.firedAt, { ...scheduler, role: 'scheduler' })),
    stateRecord(group, e.id, partition, encodeState(firedState(e, scheduledFor, firedAt))),
  ];
}

const kinds: Array<[string, ScheduleSpec]> = [
  ['cron', { kind: 'cron', cron: '0 0 6 * * *' }],
  ['every', { kind: 'every', everyMs: 90_000, anchorMs: at - 3_600_000 }],
  ['once', { kind: 'once', runAt: at }],
];
const cases: Array<[string, Partial<ScheduleEntry> & { id: string }]> = [
  ['a plain id', { id: 'nightly' }],
  ['quotes and backslashes in the id', { id: 'invoice "daily" \\ \'x\'' }],
  [
    'unicode in the id, param and payload',
    { id: 'Rechnung ü 请 🧾', param: 'ß€', payload: { note: '💶 "q"\n\t', n: [1, 2.5, null] } },
  ],
  ['control characters and a lone surrogate', { id: 'ctl\u0001\u2028\ud800', payload: '\u0000\ud83d' }],
  ['a param and no payload', { id: 'p', param: 'eu' }],
  ['a falsy payload', { id: 'z', payload: 0 }],
  ['a null payload and an empty param', { id: 'n', param: '', payload: null }],
];

describe('when the scheduler encodes fires on its fast path', () => {
  for (const [kind, spec] of kinds)
    for (const [what, over] of cases)
      it(`should write the bytes the typed encoders write (${kind}, ${what})`, () => {
        const e = entry(over.id, spec, over);
        const firedAt = at + 3;
        const origin = { host: 'h1', pid: 42, group: 'billing' };
        const fast = new FireEncoder('billing', 3, origin, undefined, 'per-task').records(
          [{ entry: e, scheduledFor: at }],
          firedAt,
        );
        const want = typed(e, at, firedAt, 'billing', 3);
        expect(fast.map((r) => ({ ...r, value: text(r.value) }))).toEqual(
          want.map((r) => ({ ...r, value: text(r.value) })),
        );
        expect(decodeTaskMessage(bytes(fast[0]?.value))).toEqual(decodeTaskMessage(bytes(want[0]?.value)));
        expect(parseStatusEvent(bytes(fast[1]?.value))).toEqual(parseStatusEvent(bytes(want[1]?.value)));
        expect(parseState(bytes(fast[2]?.value))).toEqual(parseState(bytes(want[2]?.value)));
        // Batched (the default): the same task and state records, and a batch standing for the same event.
        const [task, state, batch, ...more] = new FireEncoder('billing', 3, origin).records(
          [{ entry: e, scheduledFor: at }],
          firedAt,
        );
        expect(more).toEqual([]);
        expect([task, state]).toEqual([fast[0], fast[2]]);
        expect(batch).toMatchObject({
          topic: EVENTS_TOPIC,
          key: want[1]?.key,
          headers: { [SCHEDULED_BATCH_HEADER]: '1' },
        });
        expect(parseStatusEvents(bytes(batch?.value), batch?.headers)).toEqual([
          parseStatusEvent(bytes(want[1]?.value)),
        ]);
      });

  it('should write a manual fire (off a whole second) as the typed encoders do, and no state record for it', () => {
    const e = entry('m "1"', { kind: 'cron', cron: '0 0 6 * * *' }, { payload: { a: 'ü' } });
    const fast = new FireEncoder('g', 0, { host: 'h1', pid: 42, group: 'g' }, undefined, 'per-task').records(
      [{ entry: e, scheduledFor: at + 1, manual: true }],
      at + 2,
    );
    expect(fast.map((r) => text(r.value))).toEqual(
      typed(e, at + 1, at + 2, 'g', 0)
        .slice(0, 2)
        .map((r) => text(r.value)),
    );
  });
});

/** Records exactly as the code before the codecs wrote them (captured from FireEncoder, pauseStateValue, dlqRecord). */
const today = {
  task: '{"v":1,"taskId":"nightly \\"x\\" ü@2026-03-01T05:00:00.000Z","scheduleId":"nightly \\"x\\" ü","processor":"InvoiceProcessor","param":"eu","payload":{"amount":12.5,"note":"ü \\"q\\""},"scheduledFor":"2026-03-01T05:00:00.000Z","firedAt":"2026-03-01T05:00:00.003Z","scheduler":{"host":"h1","pid":42,"group":"billing"}}',
  event:
    '{"v":1,"taskId":"nightly \\"x\\" ü@2026-03-01T05:00:00.000Z","scheduleId":"nightly \\"x\\" ü","status":"SCHEDULED","at":"2026-03-01T05:00:00.003Z","attempt":0,"by":{"host":"h1","pid":42,"group":"billing","role":"scheduler"}}',
  state:
    '{"v":1,"lastFiredAt":"2026-03-01T05:00:00.000Z","specHash":"781d8679cdf16835","updatedAt":"2026-03-01T05:00:00.003Z"}',
  paused:
    '{"v":1,"lastFiredAt":"2026-03-01T05:00:00.000Z","specHash":"781d8679cdf16835","updatedAt":"2026-03-01T05:01:00.000Z","paused":true,"changedBy":"ann@ops"}',
  command:
    '{"v":1,"kind":"command","id":"c-1","type":"pause","group":"billing","scheduleIds":["nightly"],"by":"ann@ops","at":"2026-03-01T05:00:00.000Z"}',
  reply:
    '{"v":1,"kind":"reply","replyTo":"c-1","group":"billing","from":{"host":"h1","pid":42},"ok":true,"message":"nightly paused"}',
};
const todaysEntry = entry(
  'nightly "x" ü',
  { kind: 'cron', cron: '0 0 6 * * *' },
  {
    param: 'eu',
    payload: { amount: 12.5, note: 'ü "q"' },
  },
);

describe('when a record was written by the code before the codecs', () => {
  it('should decode its task message, and encode the same fire to the same bytes', () => {
    expect(decodeTaskMessage(Buffer.from(today.task))).toEqual({
      v: 1,
      taskId: 'nightly "x" ü@2026-03-01T05:00:00.000Z',
      scheduleId: 'nightly "x" ü',
      processor: 'InvoiceProcessor',
      param: 'eu',
      payload: { amount: 12.5, note: 'ü "q"' },
      scheduledFor: '2026-03-01T05:00:00.000Z',
      firedAt: '2026-03-01T05:00:00.003Z',
      scheduler: { host: 'h1', pid: 42, group: 'billing' },
    });
    const [task, event, state] = typed(todaysEntry, at, at + 3, 'billing', 3);
    expect([text(task?.value), text(event?.value), text(state?.value)]).toEqual([
      today.task,
      today.event,
      today.state,
    ]);
    expect(task?.headers).toEqual({
      'task-id': 'nightly "x" ü@2026-03-01T05:00:00.000Z',
      'schedule-id': 'nightly "x" ü',
      'scheduled-for': '2026-03-01T05:00:00.000Z',
      'content-type': 'application/json',
      'schema-version': '1',
    });
    expect([event?.key, event?.headers]).toEqual([
      'nightly "x" ü@2026-03-01T05:00:00.000Z',
      { 'task-id': 'nightly "x" ü@2026-03-01T05:00:00.000Z' },
    ]);
    expect([state?.key, state?.partition]).toEqual(['billing/nightly "x" ü', 3]);
  });

  it('should read its SCHEDULED event', () => {
    expect(parseStatusEvent(Buffer.from(today.event))).toMatchObject({
      status: 'SCHEDULED',
      attempt: 0,
      by: { host: 'h1', pid: 42, group: 'billing', role: 'scheduler' },
    });
  });

  it('should read its state records, fired and paused (no run count: 0 runs), and write a pause as it did', () => {
    expect(parseState(Buffer.from(today.state))).toEqual({
      lastFiredMs: at,
      specHash: '781d8679cdf16835',
      paused: false,
      runs: 0,
    });
    expect(parseState(Buffer.from(today.paused))).toEqual({
      lastFiredMs: at,
      specHash: '781d8679cdf16835',
      paused: true,
      runs: 0,
    });
    expect(pauseStateValue(todaysEntry, at, true, Date.parse('2026-03-01T05:01:00Z'), 'ann@ops')).toBe(
      today.paused,
    );
  });

  it('should read its commands and replies, and write them as it did', () => {
    const command = decodeControlRecord(Buffer.from(today.command));
    expect(command).toEqual({ kind: 'command', command: JSON.parse(today.command) as ControlRequest });
    if (command.kind !== 'command') throw new Error('not read as a command');
    expect(controlRequestRecord(command.command)).toEqual({
      topic: 'taskmanager.commands',
      key: 'billing',
      value: today.command,
    });
    const reply = decodeControlRecord(Buffer.from(today.reply));
    expect(reply).toEqual({ kind: 'reply', reply: JSON.parse(today.reply) as ControlReply });
    if (reply.kind !== 'reply') throw new Error('not read as a reply');
    expect(replyRecords(reply.reply)).toEqual([
      { topic: 'taskmanager.commands', key: 'billing', value: today.reply },
    ]);
  });

  it('should tell a stray reply and a record that is no command apart from commands', () => {
    expect(decodeControlRecord(Buffer.from('{"v":1,"kind":"reply-part"}'))).toEqual({ kind: 'stray-reply' });
    expect(decodeControlRecord(Buffer.from('not json')).kind).toBe('invalid');
    expect(decodeControlRecord(Buffer.from('{"v":1,"kind":"command","id":"x"}'))).toMatchObject({
      kind: 'invalid',
      why: expect.stringMatching(/must have required property/) as unknown,
    });
  });

  it('should read a backfill request with its range, and tell a request of a type it does not know by name', () => {
    const base = {
      v: 1,
      kind: 'command',
      id: 'c1',
      group: 'billing',
      by: 'ann@ops',
      at: '2026-03-01T05:00:00Z',
    };
    const backfill = {
      ...base,
      type: 'backfill',
      scheduleIds: ['a'],
      backfill: { from: 'x', to: 'y', dryRun: true },
    };
    expect(decodeControlRecord(Buffer.from(JSON.stringify(backfill)))).toEqual({
      kind: 'command',
      command: backfill,
    });
    const newer = { ...base, type: 'rewind', scheduleIds: ['a'] };
    expect(decodeControlRecord(Buffer.from(JSON.stringify(newer)))).toEqual({
      kind: 'unknown-type',
      command: newer,
    });
    expect(
      decodeControlRecord(Buffer.from(JSON.stringify({ ...backfill, backfill: { from: 'x' } }))).kind,
    ).toBe('invalid');
  });

  it('should read the dlq-* headers of its DLQ records', () => {
    const failed: InRecord = {
      topic: 'invoices',
      partition: 2,
      offset: '17',
      key: Buffer.from('k'),
      value: Buffer.from('{}'),
      headers: { 'task-id': 't@1' },
      timestamp: '0',
    };
    const written = dlqRecord(failed, 'attempts-exhausted', 'boom', 3, Date.parse('2026-03-01T05:02:00Z'));
    const headers = {
      'task-id': 't@1',
      'dlq-reason': 'attempts-exhausted',
      'dlq-error': 'boom',
      'dlq-attempts': '3',
      'dlq-original-topic': 'invoices',
      'dlq-original-partition': '2',
      'dlq-original-offset': '17',
      'dlq-failed-at': '2026-03-01T05:02:00.000Z',
    };
    expect(written).toEqual({ topic: 'invoices.dlq', key: 'k', value: Buffer.from('{}'), headers });
    const { record: _record, ...entry } = dlqEntryOf({
      ...failed,
      topic: 'invoices.dlq',
      offset: '5',
      partition: 0,
      headers,
    });
    expect(entry).toEqual({
      partition: 0,
      offset: '5',
      taskId: 't@1',
      key: 'k',
      reason: 'attempts-exhausted',
      error: 'boom',
      attempts: '3',
      failedAt: '2026-03-01T05:02:00.000Z',
      originalTopic: 'invoices',
      originalPartition: '2',
      originalOffset: '17',
    });
  });
});
