import { describe, expect, it } from 'vitest';
import { DeadlineTimers, deadlineTimerOf } from '../../src/scheduler/deadlines.js';
import type { EventFollower } from '../../src/scheduler/deadlines.js';
import { EntryStates } from '../../src/scheduler/entry-states.js';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import {
  deadlineRecord,
  parseDeadlineTimer,
  SCHEDULER_STATE_TOPIC,
  stateRecord,
  encodeState,
} from '../../src/shared/codecs/scheduler-state.js';
import { decodeTaskMessage } from '../../src/shared/codecs/task-message.js';
import {
  EVENTS_TOPIC,
  parseStatusEvent,
  parseStatusEvents,
  scheduledBatchRecords,
  statusEvent,
  statusEventRecord,
} from '../../src/shared/codecs/task-event.js';
import type { StatusEvent, TaskStatus } from '../../src/shared/codecs/task-event.js';
import type { InRecord, OutRecord, PartitionBatch } from '../../src/shared/kafka/index.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError } from '../../src/shared/errors.js';
import type { AlertsOption } from '../../src/shared/schedule/alerts.js';
import { cronEntry } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import { recordingLogger } from './helpers/recording-logger.js';
import { settle } from './helpers/settle.js';
import { apiAppPerTest, callAs, nightlyWithAlerts, operatorAndViewer } from './helpers/api-app.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const scheduler = { host: 'h1', pid: 42, group: 'g' };
const ALERTS: AlertsOption = {
  channel: { webhook: { url: 'https://hooks.example.com/t' } },
  deadlineSeconds: 30,
};
const entry = cronEntry('nightly', '0 0 * * * *', { alerts: ALERTS });
const TASK_ID = `nightly@${new Date(T0).toISOString()}`;
const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

/** Records as a consumer of the state topic gets them, one batch of partition `partition`. */
function batchOf(partition: number, records: readonly OutRecord[], from = 0): PartitionBatch {
  const recs: InRecord[] = records.map((r, i) => ({
    topic: r.topic,
    partition,
    offset: String(from + i),
    key: r.key === null ? null : Buffer.from(r.key),
    value: r.value === null ? null : Buffer.from(text(r.value)),
    headers: {},
    timestamp: '0',
  }));
  return {
    topic: SCHEDULER_STATE_TOPIC,
    partition,
    highWatermark: String(recs.length),
    records: recs,
    lastOffset: () => String(from + recs.length - 1),
    resolveOffset: () => undefined,
    commitIfNecessary: () => Promise.resolve(),
  } as unknown as PartitionBatch;
}

/** A follower the test drives: events reach it when the test says, and it has read through when the test says. */
class FakeFollower implements EventFollower {
  readThrough = true;
  stopped = false;
  constructor(
    readonly fromMs: number,
    private readonly onRecord: (r: InRecord) => void,
  ) {}
  readThroughNow(): Promise<boolean> {
    return Promise.resolve(this.readThrough);
  }
  stop(): Promise<void> {
    this.stopped = true;
    return Promise.resolve();
  }
  event(status: TaskStatus, atMs: number, extra: Partial<StatusEvent> = {}, taskId = TASK_ID): void {
    const by = { host: 'c1', pid: 7, role: 'consumer' as const };
    const rec = statusEventRecord(
      statusEvent({ taskId, scheduleId: 'nightly' }, status, new Date(atMs).toISOString(), 1, by, extra),
    );
    this.onRecord({
      topic: EVENTS_TOPIC,
      partition: 0,
      offset: '0',
      key: Buffer.from(taskId),
      value: Buffer.from(text(rec.value)),
      headers: rec.headers ?? {},
      timestamp: String(atMs),
    });
  }
  /** The scheduler's SCHEDULED events of `taskIds` in one batch record (keyed by its state partition). */
  scheduledBatch(atMs: number, taskIds: string[]): void {
    const by = JSON.stringify({ ...scheduler, role: 'scheduler' });
    const tasks = taskIds.map((id) => [JSON.stringify(id), '"nightly"'] as const);
    for (const rec of scheduledBatchRecords(new Date(atMs).toISOString(), by, tasks))
      this.onRecord({
        topic: EVENTS_TOPIC,
        partition: 3,
        offset: '0',
        key: Buffer.from(String(rec.key)),
        value: Buffer.from(text(rec.value)),
        headers: rec.headers ?? {},
        timestamp: String(atMs),
      });
  }
}

/** One instance's timers over a fake clock, publishing into `committed` (per transaction) while `owned`. */
function instance(clock: FakeClock, committed: OutRecord[][] = []) {
  const followers: FakeFollower[] = [];
  const alerted: string[] = [];
  const logger = recordingLogger();
  const o = {
    owned: true,
    failPublish: false,
  };
  const timers = new DeadlineTimers({
    group: 'g',
    clock,
    logger,
    scheduler,
    entry: (id) => (id === entry.id ? entry : undefined),
    publish: (_p, records) => {
      if (!o.owned) return undefined;
      if (o.failPublish) return Promise.reject(new Error('fenced by a newer owner'));
      committed.push([...records]);
      return Promise.resolve();
    },
    follow: (fromMs, onRecord) => {
      const f = new FakeFollower(fromMs, onRecord);
      followers.push(f);
      return Promise.resolve(f);
    },
    parseEvents: parseStatusEvents,
    onAlerted: (id) => alerted.push(id),
  });
  return { timers, followers, alerted, committed, logger, o };
}

/** An instance owning partition 0, a fire of `entry` at T0 committed there. */
async function armedOwner() {
  const clock = new FakeClock(T0);
  const i = instance(clock);
  i.timers.activate(0);
  i.timers.armed(0, [{ entry, scheduledFor: T0 }], T0);
  await settle();
  return { clock, ...i };
}

/** Advances the fake clock and lets the promise chains run. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let left = ms; left > 0; left -= 100) {
    clock.advance(Math.min(100, left));
    await settle(5);
  }
  await settle();
}

const alertsIn = (records: readonly OutRecord[]) =>
  records
    .filter((r) => r.topic === EVENTS_TOPIC)
    .map((r) => parseStatusEvent(Buffer.from(text(r.value))))
    .filter((e) => e?.status === 'ALERT');

describe('deadline alerts', () => {
  describe('when a schedule sets deadlineSeconds', () => {
    it('should accept a positive integer and refuse anything else', () => {
      const file = (alerts: unknown) =>
        `{"Schedules":[{"Id":"a","Cron":"0 * * * * *","Topic":"t","Alerts":${JSON.stringify(alerts)},` +
        `"TaskMessageTemplate":{"TaskProcessorName":"p"}}]}`;
      const [a] = parseScheduleText('f.json', file(ALERTS));
      expect(a?.alerts?.deadlineSeconds).toBe(30);
      expect(() => parseScheduleText('f.json', file({ ...ALERTS, deadlineSeconds: 0 }))).toThrow(ConfigError);
      expect(() => parseScheduleText('f.json', file({ ...ALERTS, deadlineSeconds: 1.5 }))).toThrow(
        ConfigError,
      );
    });

    it('should arm a timer in the fire’s records, on its state partition, and keep it out of the task message', () => {
      const records = new FireEncoder('g', 3, scheduler).records([{ entry, scheduledFor: T0 }], T0 + 250);
      const timers = records.filter((r) => r.key?.startsWith('g/deadline/'));
      expect(timers.map((r) => [r.topic, r.key, r.partition])).toEqual([
        [SCHEDULER_STATE_TOPIC, `g/deadline/${TASK_ID}`, 3],
      ]);
      expect(parseDeadlineTimer(Buffer.from(text(timers[0]?.value)))).toMatchObject({
        taskId: TASK_ID,
        scheduleId: 'nightly',
        firedAt: new Date(T0 + 250).toISOString(),
        dueAt: new Date(T0 + 30_000).toISOString(),
        topic: 't',
      });
      const task = decodeTaskMessage(Buffer.from(text(records[0]?.value)));
      expect(task.alerts).toEqual({ channel: ALERTS.channel });
    });

    it('should arm none for a trigger, a backfill, or a schedule without deadlineSeconds', () => {
      expect(deadlineTimerOf({ entry, scheduledFor: T0, manual: true }, T0)).toBeUndefined();
      expect(deadlineTimerOf({ entry, scheduledFor: T0, manual: true, backfill: true }, T0)).toBeUndefined();
      const plain = cronEntry('p', '0 * * * * *', { alerts: { channel: ALERTS.channel } });
      expect(deadlineTimerOf({ entry: plain, scheduledFor: T0 }, T0)).toBeUndefined();
    });
  });

  describe('when the state topic holds a deadline timer', () => {
    const timer = deadlineTimerOf({ entry, scheduledFor: T0 }, T0)!;
    const records = [
      stateRecord(
        'g',
        'nightly',
        0,
        encodeState({ v: 1, lastFiredAt: new Date(T0).toISOString(), specHash: 'h', updatedAt: 'x' }),
      ),
      deadlineRecord('g', 0, timer),
    ];

    it('should be skipped without error by a reader that knows only entry states (an earlier version)', () => {
      const older = new EntryStates('g');
      expect(() => older.foldBatch(batchOf(0, records))).not.toThrow();
      expect(older.has('nightly')).toBe(true);
      expect(older.has(`deadline/${TASK_ID}`)).toBe(false);
    });

    it('should be read into the timers, and an entry named deadline/… still read as an entry', () => {
      const { timers } = instance(new FakeClock(T0));
      const states = new EntryStates('g', timers);
      const odd = stateRecord(
        'g',
        'deadline/x',
        0,
        encodeState({ v: 1, lastFiredAt: new Date(T0).toISOString(), specHash: 'h', updatedAt: 'x' }),
      );
      states.foldBatch(batchOf(0, [...records, odd]));
      expect(timers.size).toBe(1);
      expect(states.has('deadline/x')).toBe(true);
      states.foldBatch(batchOf(0, [{ ...records[1]!, value: null }], 3));
      expect(timers.size).toBe(0);
    });

    it('should forget a timer when the partition is read again from its start without it (deleted and compacted)', () => {
      const { timers } = instance(new FakeClock(T0));
      const states = new EntryStates('g', timers);
      states.foldBatch(batchOf(0, records));
      // Read on from where it stopped (a re-take without a new assignment): kept.
      states.foldBatch(batchOf(0, [records[0]!], 2));
      expect(timers.size).toBe(1);
      // A new assignment reads from the start: another owner deleted the timer, compaction removed both records.
      states.foldBatch(batchOf(0, [records[0]!], 0));
      expect(timers.size).toBe(0);
    });
  });

  describe('when a fire with a deadline was committed', () => {
    it('should follow no events while no partition here has a timer', async () => {
      const clock = new FakeClock(T0);
      const { timers, followers } = instance(clock);
      timers.activate(0);
      timers.armed(0, [{ entry: cronEntry('x', '0 * * * * *'), scheduledFor: T0 }], T0);
      await advance(clock, 60_000);
      expect(followers).toEqual([]);
    });

    it('should clear the timer without an alert when the run FINISHED in time', async () => {
      const { clock, followers, committed, alerted } = await armedOwner();
      expect(followers[0]?.fromMs).toBeLessThanOrEqual(T0);
      followers[0]?.event('EXECUTING', T0 + 1000);
      await advance(clock, 10_000);
      followers[0]?.event('FINISHED', T0 + 10_000);
      await advance(clock, 1000);
      expect(committed).toEqual([
        [{ topic: SCHEDULER_STATE_TOPIC, key: `g/deadline/${TASK_ID}`, value: null, partition: 0 }],
      ]);
      await advance(clock, 60_000);
      expect(committed).toHaveLength(1);
      expect(alerted).toEqual([]);
      expect(followers[0]?.stopped).toBe(true);
    });

    it('should raise one alert and delete the timer in one transaction when the run is not FINISHED by its deadline', async () => {
      const { clock, followers, committed, alerted } = await armedOwner();
      followers[0]?.event('SCHEDULED', T0);
      followers[0]?.event('EXECUTING', T0 + 1000);
      await advance(clock, 29_900);
      expect(committed).toEqual([]);
      await advance(clock, 200);
      expect(committed).toHaveLength(1);
      const [tx] = committed;
      const [alert] = alertsIn(tx!);
      expect(alert).toMatchObject({
        taskId: TASK_ID,
        alert: { kind: 'deadline', reason: 'not FINISHED 30 s after its instant: EXECUTING attempt 1' },
      });
      expect(tx!.map((r) => r.key)).toEqual([TASK_ID, 'alert/nightly', `g/deadline/${TASK_ID}`]);
      expect(tx!.at(-1)?.value).toBeNull();
      expect(alerted).toEqual(['nightly']);
      await advance(clock, 60_000);
      expect(committed).toHaveLength(1);
    });

    it('should read SCHEDULED from a batch record, and not let one read after the run started hide that it did', async () => {
      const first = await armedOwner();
      first.followers[0]?.scheduledBatch(T0, ['other@2026-11-22T10:00:00.000Z', TASK_ID]);
      await advance(first.clock, 31_000);
      expect(alertsIn(first.committed[0]!)[0]?.alert?.reason).toBe(
        'not FINISHED 30 s after its instant: no run started (SCHEDULED)',
      );
      // The batch is on another partition than the run's own events: it may be read after them.
      const second = await armedOwner();
      second.followers[0]?.event('EXECUTING', T0 + 1000);
      second.followers[0]?.scheduledBatch(T0, [TASK_ID]);
      await advance(second.clock, 31_000);
      expect(alertsIn(second.committed[0]!)[0]?.alert?.reason).toBe(
        'not FINISHED 30 s after its instant: EXECUTING attempt 1',
      );
    });

    it('should wait for the events to be read through before deciding, and count a FINISHED it then reads', async () => {
      const { clock, followers, committed, alerted } = await armedOwner();
      followers[0]!.readThrough = false;
      await advance(clock, 35_000);
      expect(committed).toEqual([]);
      followers[0]?.event('FINISHED', T0 + 29_000);
      followers[0]!.readThrough = true;
      await advance(clock, 1000);
      expect(alerted).toEqual([]);
      expect(committed).toHaveLength(1);
      expect(alertsIn(committed[0]!)).toEqual([]);
    });

    it('should say no run started when no event of it was read, and name a run FINISHED after its deadline', async () => {
      const clock = new FakeClock(T0);
      const { timers, followers, committed } = instance(clock);
      timers.activate(0);
      const second = T0 + 3_600_000;
      timers.armed(0, [{ entry, scheduledFor: T0 }], T0);
      timers.armed(0, [{ entry, scheduledFor: second }], second);
      await settle();
      await advance(clock, 31_000);
      expect(alertsIn(committed[0]!)[0]?.alert?.reason).toBe(
        'not FINISHED 30 s after its instant: no run started',
      );
      const secondId = `nightly@${new Date(second).toISOString()}`;
      clock.set(second + 40_000);
      followers.at(-1)?.event('FINISHED', second + 35_000, {}, secondId);
      await advance(clock, 1000);
      expect(alertsIn(committed[1]!)[0]?.alert?.reason).toBe(
        'not FINISHED 30 s after its instant: FINISHED 5.0 s after the deadline',
      );
    });
  });

  describe('when the owner of the partition changes before the deadline', () => {
    it('should leave the timer to the next owner, which raises the same alert once', async () => {
      const clock = new FakeClock(T0);
      const committed: OutRecord[][] = [];
      const first = instance(clock, committed);
      const timer = deadlineTimerOf({ entry, scheduledFor: T0 }, T0)!;
      const states = new EntryStates('g', first.timers);
      first.timers.activate(0);
      states.foldBatch(batchOf(0, [deadlineRecord('g', 0, timer)]));
      first.timers.activate(0);
      await settle();
      // Fenced at its deadline: its transaction fails, the timer stays in the partition.
      first.o.failPublish = true;
      await advance(clock, 31_000);
      expect(committed).toEqual([]);
      expect(first.logger.lines.some((l) => l.includes(`deadline alert of ${TASK_ID} not written`))).toBe(
        true,
      );
      first.timers.release(0);
      first.o.owned = false;
      await settle();
      expect(first.followers.every((f) => f.stopped)).toBe(true);

      // The next owner reads the partition (the timer is there) and decides it.
      const next = instance(clock, committed);
      new EntryStates('g', next.timers).foldBatch(batchOf(0, [deadlineRecord('g', 0, timer)]));
      next.timers.activate(0);
      await settle();
      expect(next.followers[0]?.fromMs).toBeLessThanOrEqual(T0);
      next.followers[0]?.event('EXECUTING', T0 + 1000);
      await advance(clock, 1000);
      expect(committed).toHaveLength(1);
      const deliveries = committed[0]!.filter((r) => r.key === 'alert/nightly');
      expect(deliveries.map((r) => decodeTaskMessage(Buffer.from(text(r.value))).taskId)).toEqual([
        `alert/nightly/deadline@${new Date(T0).toISOString()}`,
      ]);
      await advance(clock, 60_000);
      expect(committed).toHaveLength(1);
      expect(first.alerted).toEqual([]);
      expect(next.alerted).toEqual(['nightly']);
      await first.timers.stop();
      await next.timers.stop();
    });
  });
  describe('when taskapi serves a task with deadlineSeconds', () => {
    const apis = apiAppPerTest();

    it('should take it in the task’s alerts and list its deadline alerts', async () => {
      const api = await apis.open();
      const [op, viewer] = await operatorAndViewer(api);
      const call = callAs(api);
      await nightlyWithAlerts(api, op, ALERTS, '0 0 * * * *');
      const zero = await call(op, 'POST', '/api/v1/tasks', {
        id: 'other',
        processor: 'p',
        schedule: { cron: '0 0 * * * *' },
        alerts: { ...ALERTS, deadlineSeconds: 0 },
      });
      expect(zero.statusCode).toBe(400);

      const by = { host: 's', pid: 1, role: 'scheduler' as const };
      api.kafka.write([
        statusEventRecord(
          statusEvent(
            { taskId: TASK_ID, scheduleId: 'nightly' },
            'ALERT',
            new Date(T0 + 30_000).toISOString(),
            0,
            by,
            {
              alert: { kind: 'deadline', reason: 'not FINISHED 30 s after its instant: EXECUTING attempt 1' },
            },
          ),
        ),
      ]);
      await settle();
      const listed = (await call(viewer, 'GET', '/api/v1/alerts')).json<{ items: unknown[] }>().items;
      expect(listed).toMatchObject([
        {
          kind: 'deadline',
          taskId: TASK_ID,
          deliveryTaskId: `alert/nightly/deadline@${new Date(T0).toISOString()}`,
        },
      ]);
    });
  });
});
