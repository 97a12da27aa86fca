import { afterEach, describe, expect, it } from 'vitest';
import { instantsOf, sortInstants, taskIdsIn } from '../../src/scheduler/backfill.js';
import { timesOf } from '../../src/scheduler/fire-loop.js';
import { GroupScheduler } from '../../src/scheduler/group-scheduler.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import type { InRecord } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { rangeProblems } from '../../src/shared/backfill.js';
import type { BackfillRange } from '../../src/shared/backfill.js';
import { cronEntry } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import type { MemoryGroupMember } from './helpers/memory-group-member.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { settle } from './helpers/settle.js';

const T0 = Date.parse('2026-11-25T08:00:00.000Z');
const STATE = SCHEDULER_STATE_TOPIC;
const iso = (ms: number): string => new Date(ms).toISOString();
const isoAll = (ms: readonly number[]): string[] => ms.map(iso);
/** Whole seconds from `fromMs`, `count` of them, as ISO text. */
const seconds = (fromMs: number, count: number): string[] =>
  Array.from({ length: count }, (_, i) => iso(fromMs + i * 1000));

describe('the instants of a backfill range', () => {
  it('should be the schedule’s own instants in its zone, a DST gap’s time once after the gap, a repeated time once', () => {
    const e = cronEntry('nightly', '0 30 2 * * *', { timeZone: 'Europe/Berlin' });
    const spring = instantsOf(e, Date.parse('2026-03-28T00:00:00Z'), Date.parse('2026-03-30T23:59:59Z'), 10);
    expect(isoAll(spring.instants)).toEqual([
      '2026-03-28T01:30:00.000Z',
      '2026-03-29T01:00:00.000Z',
      '2026-03-30T00:30:00.000Z',
    ]);
    const autumn = instantsOf(e, Date.parse('2026-10-24T00:00:00Z'), Date.parse('2026-10-26T23:59:59Z'), 10);
    expect(isoAll(autumn.instants)).toEqual([
      '2026-10-24T00:30:00.000Z',
      '2026-10-25T00:30:00.000Z',
      '2026-10-26T01:30:00.000Z',
    ]);
  });

  it('should include both ends and keep inside StartAt and EndAt', () => {
    const e = cronEntry('h', '0 0 * * * *', {
      startAt: '2026-12-01T02:00:00Z',
      endAt: '2026-12-01T04:00:00Z',
    });
    const r = instantsOf(e, Date.parse('2026-12-01T00:00:00Z'), Date.parse('2026-12-01T06:00:00Z'), 100);
    expect(isoAll(r.instants)).toEqual([
      '2026-12-01T02:00:00.000Z',
      '2026-12-01T03:00:00.000Z',
      '2026-12-01T04:00:00.000Z',
    ]);
    const ends = instantsOf(
      cronEntry('h', '0 0 * * * *'),
      Date.parse('2026-12-01T02:00:00Z'),
      Date.parse('2026-12-01T03:00:00Z'),
      100,
    );
    expect(isoAll(ends.instants)).toEqual(['2026-12-01T02:00:00.000Z', '2026-12-01T03:00:00.000Z']);
  });

  it('should stop at the cap and name the first instant past it', () => {
    const r = instantsOf(cronEntry('s', '* * * * * *'), T0, T0 + 60_000, 3);
    expect(isoAll(r.instants)).toEqual(seconds(T0, 3));
    expect(r.beyond).toBe(T0 + 3000);
    expect(instantsOf(cronEntry('s', '* * * * * *'), T0, T0 + 2000, 3).beyond).toBeUndefined();
  });
});

describe('which instants of a range already have a task', () => {
  const record = (key: string, value: object, headers: Record<string, string> = {}): InRecord => ({
    topic: 't',
    partition: 0,
    offset: '0',
    key: Buffer.from(key),
    value: Buffer.from(JSON.stringify(value)),
    headers,
    timestamp: '0',
  });

  it('should take the taskIds of the schedule’s records only, from the header or else the value', () => {
    const ids = taskIdsIn(
      [
        record('a', {}, { 'task-id': `a@${iso(T0)}` }),
        record('a', { taskId: `a@${iso(T0 + 1000)}` }),
        record('b', {}, { 'task-id': `b@${iso(T0 + 2000)}` }),
        { ...record('a', {}), value: Buffer.from('not json') },
      ],
      'a',
    );
    expect([...ids].sort()).toEqual([`a@${iso(T0)}`, `a@${iso(T0 + 1000)}`]);
  });

  it('should sort the instants into missing, present and not reached, each oldest first', () => {
    const instants = [T0, T0 + 1000, T0 + 2000, T0 + 3000, T0 + 4000];
    const published = new Set([`a@${iso(T0 + 1000)}`, `a@${iso(T0 + 4000)}`]);
    expect(sortInstants('a', instants, published, T0 + 2000)).toEqual({
      missing: [T0, T0 + 2000],
      present: [T0 + 1000, T0 + 4000],
      pending: [T0 + 3000],
    });
  });

  it('should refuse a range that is not two RFC 3339 instants in order, or a cap out of bounds', () => {
    expect(rangeProblems({ from: iso(T0), to: iso(T0) })).toEqual([]);
    expect(rangeProblems({ from: '2026-12-01', to: iso(T0), max: 0 }).map((p) => p.field)).toEqual([
      'from',
      'max',
    ]);
    expect(rangeProblems({ from: iso(T0), to: iso(T0 - 1), max: 10_001 })).toEqual([
      { field: 'to', detail: `${iso(T0 - 1)} is before from (${iso(T0)})` },
      { field: 'max', detail: '10001 is not an integer from 1 to 10000' },
    ]);
  });
});

const running: GroupScheduler[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop({ deadlineMs: 0 })));
});

/** A scheduler group over MemoryKafka on a fake clock, one state partition, its task topic `t`. */
function group(entries: ScheduleEntry[]) {
  const clock = new FakeClock(T0 + 300);
  const kafka = new MemoryKafka(clock);
  kafka.partitions.set(STATE, 1);
  const instance = async (): Promise<{ scheduler: GroupScheduler; member: MemoryGroupMember }> => {
    const scheduler = new GroupScheduler({
      kafka: kafka.client(),
      entries,
      group: 'g',
      clock,
      logger: silentLogger,
    });
    const member = kafka.members[kafka.members.length - 1] as MemoryGroupMember;
    await scheduler.start();
    running.push(scheduler);
    return { scheduler, member };
  };
  /** Moves time on in steps, letting the owners publish between them. */
  const run = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 250) {
      clock.advance(Math.min(250, ms - t));
      await settle();
    }
  };
  /** The task messages of entry `id` in topic `t`, in the order they were published. */
  const tasks = (id: string): TaskMessage[] =>
    kafka
      .records('t', 0)
      .map((r) => JSON.parse(r.value?.toString('utf8') ?? '{}') as TaskMessage)
      .filter((t) => t.scheduleId === id);
  const fired = (id: string): string[] => tasks(id).map((t) => t.scheduledFor);
  return { clock, kafka, instance, run, tasks, fired };
}

/** A group whose one instance owns the partition (taken over), with `entries`. */
async function owned(entries: ScheduleEntry[]) {
  const g = group(entries);
  const a = await g.instance();
  a.member.join({ [STATE]: [0] });
  await settle();
  return { ...g, a };
}

const range = (fromMs: number, toMs: number, more: Partial<BackfillRange> = {}): BackfillRange => ({
  from: iso(fromMs),
  to: iso(toMs),
  ...more,
});

describe('a backfill through the owner of the entry', () => {
  it('should publish the instants without a task oldest first, once: a dry run and a second run publish nothing', async () => {
    const e = cronEntry('a', '* * * * * *');
    const { run, fired, tasks, a } = await owned([e]);
    await run(3000);
    expect(fired('a')).toEqual(seconds(T0 + 1000, 3));

    const dry = await a.scheduler.backfill('a', range(T0 - 4000, T0 + 2000, { dryRun: true }), 'tester');
    expect(dry).toMatchObject({
      ok: true,
      backfill: {
        topic: 't',
        dryRun: true,
        published: seconds(T0 - 4000, 5),
        present: seconds(T0 + 1000, 2),
        pending: [],
      },
    });
    expect(dry.message).toBe('would publish 5 task(s) of a to t, oldest first (2 already had a task)');
    await settle();
    expect(fired('a')).toEqual(seconds(T0 + 1000, 3));

    const first = await a.scheduler.backfill('a', range(T0 - 4000, T0 + 2000), 'tester');
    expect(first.backfill).toMatchObject({ dryRun: false, published: seconds(T0 - 4000, 5) });
    expect(fired('a')).toEqual([...seconds(T0 + 1000, 3), ...seconds(T0 - 4000, 5)]);
    // The task messages are those of fires of these instants: their taskIds, no jitteredFor.
    const backfilled = tasks('a').slice(3);
    expect(backfilled.map((t) => t.taskId)).toEqual(seconds(T0 - 4000, 5).map((at) => `a@${at}`));
    expect(backfilled.every((t) => t.jitteredFor === undefined)).toBe(true);

    const again = await a.scheduler.backfill('a', range(T0 - 4000, T0 + 2000), 'tester');
    expect(again).toMatchObject({ ok: true, backfill: { published: [], present: seconds(T0 - 4000, 7) } });
    expect(again.message).toBe('nothing to publish for a (7 already had a task)');
    await run(1000);
    expect(fired('a')).toEqual([...seconds(T0 + 1000, 3), ...seconds(T0 - 4000, 5), iso(T0 + 4000)]);
    // A backfill moves neither the last fired instant nor anything the loop fires.
    expect(a.scheduler.status(['a'])[0]?.lastFiredAt).toBe(iso(T0 + 4000));
  });

  it('should see what a previous owner backfilled: the check is the task topic, not the owner’s memory', async () => {
    const e = cronEntry('a', '* * * * * *');
    const { instance, run, fired, a } = await owned([e]);
    await run(2000);
    expect((await a.scheduler.backfill('a', range(T0 - 3000, T0), 'tester')).backfill?.published).toEqual(
      seconds(T0 - 3000, 4),
    );
    // A takes no part any more; B is given the partition (a failover), takes it over and is asked again.
    a.member.join({ [STATE]: [] });
    const b = await instance();
    b.member.join({ [STATE]: [0] });
    await run(1000);
    expect(a.scheduler.answersFor('a')).toBe(false);
    const r = await b.scheduler.backfill('a', range(T0 - 3000, T0 + 2000), 'tester');
    expect(r.backfill).toMatchObject({ published: [], present: seconds(T0 - 3000, 6) });
    const all = fired('a');
    expect(new Set(all).size).toBe(all.length);
  });

  it('should leave to the schedule what it has not reached, and never go past its MaxRuns', async () => {
    const e = cronEntry('a', '* * * * * *', { maxRuns: 2 });
    const { run, fired, a } = await owned([e]);
    await run(5000);
    expect(fired('a')).toEqual(seconds(T0 + 1000, 2));
    const r = await a.scheduler.backfill('a', range(T0 - 2000, T0 + 5000), 'tester');
    expect(r.backfill).toMatchObject({
      published: seconds(T0 - 2000, 3),
      present: seconds(T0 + 1000, 2),
      pending: seconds(T0 + 3000, 3),
    });
    expect(r.message).toContain('(2 already had a task, 3 not reached by the schedule yet)');
    // Backfilled tasks are not runs: the count stays at the limit, and nothing more fires.
    await run(2000);
    expect(a.scheduler.status(['a'])[0]).toMatchObject({ state: 'ended', runCount: 2 });
    expect(fired('a')).toHaveLength(5);
  });

  it('should give a task of an entry with jitter the jitteredFor of its instant, published at once', async () => {
    const e = cronEntry('j', '0 * * * * *', { jitter: 30 });
    const { fired, tasks, a } = await owned([e]);
    const r = await a.scheduler.backfill('j', range(T0 - 300_000, T0 - 60_000), 'tester');
    const minutes = Array.from({ length: 5 }, (_, i) => iso(T0 - 300_000 + i * 60_000));
    expect(r.backfill?.published).toEqual(minutes);
    expect(fired('j')).toEqual(minutes);
    expect(tasks('j').map((t) => t.jitteredFor)).toEqual(
      minutes.map((m) => iso(timesOf(e).dueOf(Date.parse(m)))),
    );
  });

  it('should say when instants it publishes are older than what retention left of the task topic', async () => {
    const e = cronEntry('a', '* * * * * *');
    const { kafka, run, clock, a } = await owned([e]);
    await run(3000);
    // Retention deleted the partition's first record (the task of T0 + 1 s): the oldest left was written at T0 + 2 s.
    kafka.topics.get('t')?.splice(0, 1);
    const keptSince = Number(kafka.records('t', 0)[0]?.timestamp);
    expect(keptSince).toBeGreaterThan(T0 + 1000);
    expect(clock.now()).toBeGreaterThan(keptSince);
    const r = await a.scheduler.backfill('a', range(T0 - 1000, T0 + 3000, { dryRun: true }), 'tester');
    expect(r.backfill).toMatchObject({
      published: seconds(T0 - 1000, 3),
      present: seconds(T0 + 2000, 2),
      keptSince: iso(keptSince),
    });
    expect(r.message).toBe(
      'would publish 3 task(s) of a to t, oldest first (2 already had a task); 3 of them are older than the oldest ' +
        `record t's partition still holds (${iso(keptSince)}): their tasks may have been deleted by retention ` +
        'rather than never published',
    );
  });

  it('should refuse, in one line, an unknown Id, a paused entry, a range in the future, too many instants or none', async () => {
    const e = cronEntry('a', '* * * * * *');
    const hourly = cronEntry('h', '0 0 * * * *');
    const { fired, a } = await owned([e, hourly]);
    const s = a.scheduler;
    expect(await s.backfill('nope', range(T0 - 2000, T0), 'tester')).toMatchObject({
      ok: false,
      code: 'NOT_FOUND',
      message: 'no schedule "nope" in group g (see taskscheduler status)',
    });
    expect(await s.backfill('a', range(T0 - 2000, T0 + 5000), 'tester')).toMatchObject({
      ok: false,
      code: 'USAGE',
      message: `to ${iso(T0 + 5000)} is in the future (it is ${iso(T0 + 300)}): a backfill publishes only instants that have passed`,
    });
    expect(await s.backfill('a', range(T0 - 10_000, T0, { max: 3 }), 'tester')).toMatchObject({
      ok: false,
      code: 'USAGE',
      message:
        `${iso(T0 - 10_000)} to ${iso(T0)} holds more than 3 instants of a (the next is ${iso(T0 - 7000)}): ` +
        'narrow the range, or raise max (--max, at most 10000)',
    });
    expect(await s.backfill('h', range(T0 - 1800, T0 - 1200), 'tester')).toMatchObject({
      ok: false,
      code: 'USAGE',
      message: `h has no instant from ${iso(T0 - 1800)} to ${iso(T0 - 1200)} (0 0 * * * * in UTC)`,
    });
    expect(await s.backfill('a', { from: 'yesterday', to: iso(T0) }, 'tester')).toMatchObject({
      ok: false,
      code: 'USAGE',
    });
    await s.setPaused('a', true, 'tester');
    expect(await s.backfill('a', range(T0 - 2000, T0), 'tester')).toMatchObject({
      ok: false,
      code: 'CONFLICT',
      message:
        'a is paused: resume it first (taskscheduler resume a); its backfilled tasks would run while it is paused',
    });
    expect(fired('a')).toEqual([]);
  });
});
