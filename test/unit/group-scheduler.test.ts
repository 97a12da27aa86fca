import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { GroupScheduler } from '../../src/scheduler/group-scheduler.js';
import { transactionalIdOf } from '../../src/scheduler/partition-owner.js';
import { REFENCED_GRACE_MS } from '../../src/scheduler/state-partitions.js';
import { pauseStateValue, SCHEDULER_STATE_TOPIC, stateKey } from '../../src/shared/codecs/scheduler-state.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { partitionForKey } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { cronEntry } from './helpers/entries.js';
import { FakeClock } from './helpers/fake-clock.js';
import type { MemoryGroupMember } from './helpers/memory-group-member.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { settle } from './helpers/settle.js';

const T0 = Date.parse('2026-11-25T08:00:00.000Z');
const GROUP = 'g';
const STATE = SCHEDULER_STATE_TOPIC;
const everySecond = (extra: Partial<ScheduleEntry> = {}): ScheduleEntry =>
  cronEntry('a', '* * * * * *', extra);

const running: GroupScheduler[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop({ deadlineMs: 0 })));
});

function cluster(startMs = T0 + 300) {
  const clock = new FakeClock(startMs);
  const kafka = new MemoryKafka(clock);
  kafka.partitions.set(STATE, 1);
  /** Moves time on in steps, letting the owners publish between them. */
  const run = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 250) {
      clock.advance(Math.min(250, ms - t));
      await settle();
    }
  };
  /** The instants of entry `id` published to its topic, as ISO text, in publishing order. */
  const fired = (id = 'a', topic = 't'): string[] =>
    kafka
      .records(topic, 0)
      .map(
        (r) => JSON.parse(r.value?.toString('utf8') ?? '{}') as { scheduleId: string; scheduledFor: string },
      )
      .filter((t) => t.scheduleId === id)
      .map((t) => t.scheduledFor);
  /** A state record as an earlier run of the group wrote it. */
  const stateWas = (e: ScheduleEntry, lastFiredMs: number, paused = false): void =>
    kafka.write([
      {
        topic: STATE,
        key: stateKey(GROUP, e.id),
        value: pauseStateValue(e, lastFiredMs, paused, lastFiredMs, 'an earlier run'),
        partition: 0,
      },
    ]);
  return { clock, kafka, run, fired, stateWas };
}

/** A started scheduler instance and its group member (the test hands out partitions, as the coordinator). */
async function instance(
  kafka: MemoryKafka,
  clock: FakeClock,
  entries: ScheduleEntry[],
  options: { sessionTimeoutMs?: number } = {},
): Promise<{ scheduler: GroupScheduler; member: MemoryGroupMember }> {
  const scheduler = new GroupScheduler({
    kafka: kafka.client(),
    entries,
    group: GROUP,
    clock,
    logger: silentLogger,
    ...options,
  });
  const member = kafka.members[kafka.members.length - 1] as MemoryGroupMember;
  await scheduler.start();
  running.push(scheduler);
  return { scheduler, member };
}

/** A cluster whose first instance fires `e` and owns the one state partition, taken over. */
async function owned(e: ScheduleEntry) {
  const c = cluster();
  const a = await instance(c.kafka, c.clock, [e]);
  a.member.join({ [STATE]: [0] });
  await settle();
  return { ...c, a };
}

/** `count` whole seconds from `fromMs` on, as ISO text. */
function seconds(fromMs: number, count: number): string[] {
  return Array.from({ length: count }, (_, i) => new Date(fromMs + i * 1000).toISOString());
}

describe('GroupScheduler', () => {
  describe('when it takes over a partition whose entries missed fire times', () => {
    it('should fire only the latest missed instant under fire-once, then go on each second', async () => {
      const { clock, kafka, run, fired, stateWas } = cluster();
      const e = everySecond({ misfire: 'fire-once' });
      stateWas(e, T0 - 10_000);
      const { member } = await instance(kafka, clock, [e]);
      member.join({ [STATE]: [0] });
      await settle();
      expect(fired()).toEqual(seconds(T0, 1));
      await run(2000);
      expect(fired()).toEqual(seconds(T0, 3));
    });

    it('should fire every missed instant under fire-all, oldest first', async () => {
      const { clock, kafka, fired, stateWas } = cluster();
      const e = everySecond({ misfire: 'fire-all' });
      stateWas(e, T0 - 10_000);
      const { member } = await instance(kafka, clock, [e]);
      member.join({ [STATE]: [0] });
      await settle();
      expect(fired()).toEqual(seconds(T0 - 9000, 10));
    });

    it('should fire nothing of an entry paused in the state topic, and be ready', async () => {
      const { clock, kafka, run, fired, stateWas } = cluster();
      const e = everySecond({ misfire: 'fire-all' });
      stateWas(e, T0 - 10_000, true);
      const { scheduler, member } = await instance(kafka, clock, [e]);
      member.join({ [STATE]: [0] });
      await run(3000);
      expect(fired()).toEqual([]);
      expect(scheduler.readiness()).toMatchObject({ ready: true, assigned: [0], active: [0] });
    });
  });

  describe('when its metrics are scraped', () => {
    it('should count the armed, paused and disabled entries of the owned partitions only', async () => {
      const { clock, kafka, run } = cluster();
      kafka.partitions.set(STATE, 2);
      const partitionOf = (id: string): number => partitionForKey(stateKey(GROUP, id), 2);
      const ids = (p: number, n: number): string[] =>
        Array.from({ length: 40 }, (_, i) => `e${i}`)
          .filter((id) => partitionOf(id) === p)
          .slice(0, n);
      const [armed, paused, disabled] = ids(0, 3).map((id) => cronEntry(id, '* * * * * *'));
      const others = ids(1, 2).map((id, i) => cronEntry(id, '* * * * * *', { enabled: i === 0 }));
      for (const e of [paused!, others[0]!])
        kafka.write([
          {
            topic: STATE,
            key: stateKey(GROUP, e.id),
            value: pauseStateValue(e, T0 - 1000, true, T0 - 1000, 'an earlier run'),
            partition: partitionOf(e.id),
          },
        ]);
      const registry = new Registry();
      const scheduler = new GroupScheduler({
        kafka: kafka.client(),
        entries: [armed!, paused!, { ...disabled!, enabled: false }, ...others],
        group: GROUP,
        clock,
        logger: silentLogger,
        metricsRegistry: registry,
      });
      const member = kafka.members[kafka.members.length - 1] as MemoryGroupMember;
      await scheduler.start();
      running.push(scheduler);
      member.join({ [STATE]: [0] });
      await run(1000);
      const text = await registry.getSingleMetricAsString('taskmanager_scheduler_schedules');
      const count = (state: string): string | undefined =>
        new RegExp(`state="${state}"[^}]*} (\\d+)`).exec(text)?.[1];
      expect([count('armed'), count('paused'), count('disabled')]).toEqual(['1', '1', '1']);
    });
  });

  describe('when the system clock reverses between two owners of a partition', () => {
    it('should not schedule an instant twice', async () => {
      const e = everySecond({ misfire: 'fire-all' });
      const { clock, kafka, run, fired, a } = await owned(e);
      await run(5000);
      expect(fired()).toEqual(seconds(T0 + 1000, 5));
      await a.scheduler.stop({ deadlineMs: 1000 });
      // NTP steps the clock back 10 s; the next owner reads that the group fired up to T0+5 s.
      clock.set(T0 - 10_000 + 300);
      const b = await instance(kafka, clock, [e]);
      b.member.join({ [STATE]: [0] });
      await run(20_000);
      expect(fired()).toEqual(seconds(T0 + 1000, 10));
    });
  });

  describe('when a rebalance moves a partition to another instance after a gap', () => {
    it('should fire each instant exactly once across both, the gap caught up per Misfire', async () => {
      const { clock, kafka, run, fired } = cluster();
      const e = everySecond({ misfire: 'fire-all' });
      const a = await instance(kafka, clock, [e]);
      const b = await instance(kafka, clock, [e]);
      a.member.join({ [STATE]: [0] });
      b.member.join({ [STATE]: [] });
      await run(3000);
      a.member.join({ [STATE]: [] });
      await run(3000);
      expect(fired()).toEqual(seconds(T0 + 1000, 3));
      b.member.join({ [STATE]: [0] });
      await run(2000);
      expect(fired()).toEqual(seconds(T0 + 1000, 8));
      expect(a.scheduler.ownedPartitions).toEqual([]);
      expect(b.scheduler.answersFor('a')).toBe(true);
    });
  });

  describe('when another instance takes over a partition this one still believes it owns', () => {
    it('should stop firing at the fence, and the new owner fire each instant once', async () => {
      const e = everySecond({ misfire: 'fire-all' });
      const { clock, kafka, run, fired, a } = await owned(e);
      await run(2000);
      // B gets the partition; the join that would tell A has not reached it.
      const b = await instance(kafka, clock, [e]);
      b.member.join({ [STATE]: [0] });
      await run(3000);
      expect(fired()).toEqual(seconds(T0 + 1000, 5));
      expect(a.scheduler.readiness()).toMatchObject({
        ready: false,
        reason: 'taking over state partitions [0]',
      });
      expect(a.scheduler.answersFor('a')).toBe(false);
      // The rebalance reaches A within the grace period: it does not take the partition back.
      a.member.join({ [STATE]: [] });
      await run(REFENCED_GRACE_MS + 2000);
      expect(fired()).toEqual(seconds(T0 + 1000, 17));
      expect(b.scheduler.readiness().ready).toBe(true);
    });
  });

  describe('when fenced with no rebalance following (this member was out of its group meanwhile)', () => {
    it('should take the partition over again as soon as the group coordinator says it is still its own, and catch up', async () => {
      const e = everySecond({ misfire: 'fire-all' });
      const { kafka, run, fired, a } = await owned(e);
      await run(2000);
      // An instance that got the partition while A was out of its group, and died before firing anything.
      await kafka.producer({ transactionalId: transactionalIdOf(GROUP, 0) }).fence();
      await run(2000);
      expect(fired()).toEqual(seconds(T0 + 1000, 4));
      expect(a.scheduler.readiness().ready).toBe(true);
    });

    it('should take it over again after the grace period when the coordinator cannot be asked', async () => {
      const e = everySecond({ misfire: 'fire-all' });
      const { kafka, run, fired, a } = await owned(e);
      kafka.describeGroupsFails = true;
      await run(2000);
      await kafka.producer({ transactionalId: transactionalIdOf(GROUP, 0) }).fence();
      await run(3000);
      expect(fired()).toEqual(seconds(T0 + 1000, 2));
      await run(REFENCED_GRACE_MS);
      expect(fired()).toEqual(seconds(T0 + 1000, 15));
      expect(a.scheduler.readiness().ready).toBe(true);
    });

    it('should not fence again while its coordinator does not answer (it may be the one out of its group)', async () => {
      const e = everySecond({ misfire: 'fire-all' });
      const { kafka, run, fired, a } = await owned(e);
      await run(2000);
      const rightful = kafka.producer({ transactionalId: transactionalIdOf(GROUP, 0) });
      await rightful.fence();
      a.member.silence();
      await run(REFENCED_GRACE_MS + 3000);
      expect(fired()).toEqual(seconds(T0 + 1000, 2));
      // The rightful owner's producer was not fenced by A.
      await expect(rightful.sendInTransaction([])).resolves.toBeUndefined();
      expect(a.scheduler.readiness().reason).toMatch(/^no answer from the group coordinator for \d+ s/);
    });
  });

  describe('when a broker kill silences its coordinator and leaves a transaction in doubt', () => {
    it('should fence again and publish what is queued once transactions work, without waiting for its group', async () => {
      const c = cluster();
      const e = everySecond({ misfire: 'fire-all' });
      const a = await instance(c.kafka, c.clock, [e], { sessionTimeoutMs: 10_000 });
      a.member.join({ [STATE]: [0] });
      await c.run(2000);
      a.member.silence();
      c.kafka.failingTransactions.add(transactionalIdOf(GROUP, 0));
      // Transactions work again 7.5 s later; the group's coordinator still does not answer.
      await c.run(7500);
      c.kafka.failingTransactions.clear();
      await c.run(1500);
      // Silent for less than the session timeout (10 s): nobody else can own the partition yet.
      expect(c.fired()).toEqual(seconds(T0 + 1000, 11));
      // Past the session timeout it may have been given to another member: it does not fence again.
      c.kafka.failingTransactions.add(transactionalIdOf(GROUP, 0));
      await c.run(2000);
      c.kafka.failingTransactions.clear();
      await c.run(2000);
      expect(c.fired()).toEqual(seconds(T0 + 1000, 11));
    });
  });

  describe('when its readiness is asked during a takeover', () => {
    it('should say which partition it is still taking over, then be ready once armed', async () => {
      const { clock, kafka, stateWas } = cluster();
      const e = everySecond();
      stateWas(e, T0 - 1000);
      const { scheduler, member } = await instance(kafka, clock, [e]);
      expect(scheduler.readiness()).toMatchObject({
        ready: false,
        reason: 'not in scheduler group g (joining)',
      });
      member.holdFetches = true;
      member.join({ [STATE]: [0] });
      await settle();
      expect(scheduler.readiness()).toMatchObject({
        ready: false,
        reason: 'taking over state partitions [0]',
      });
      member.holdFetches = false;
      member.fetchSoon();
      await settle();
      expect(scheduler.readiness()).toMatchObject({ ready: true, reason: 'ok', active: [0] });
    });

    it('should say when it cannot publish the fires of a partition', async () => {
      const { clock, kafka, run } = cluster();
      const { scheduler, member } = await instance(kafka, clock, [everySecond()]);
      member.join({ [STATE]: [0] });
      await settle();
      kafka.failingTransactions.add(transactionalIdOf(GROUP, 0));
      await run(1000);
      expect(scheduler.readiness()).toMatchObject({
        ready: false,
        reason: 'cannot publish fires of state partitions [0]',
      });
    });
  });

  describe('when the schedule is reloaded', () => {
    it('should fire an added one-shot whose instant passed at once, and stop a removed entry', async () => {
      const e = everySecond();
      const { run, fired, a } = await owned(e);
      await run(2000);
      const once: ScheduleEntry = {
        ...cronEntry('o', '* * * * * *'),
        spec: { kind: 'once', runAt: T0 - 60_000 },
      };
      expect(a.scheduler.applyEntries([once])).toEqual({ added: ['o'], changed: [], removed: ['a'] });
      await run(2000);
      expect(fired('o')).toEqual([new Date(T0 - 60_000).toISOString()]);
      expect(fired('a')).toEqual(seconds(T0 + 1000, 2));
    });

    it('should keep the last fired instant of a changed entry, so no instant fires twice', async () => {
      const e = everySecond();
      const { clock, run, fired, a } = await owned(e);
      await run(2000);
      clock.set(T0 - 5000);
      expect(a.scheduler.applyEntries([{ ...e, payload: { v: 2 } }]).changed).toEqual(['a']);
      await run(9000);
      expect(fired()).toEqual(seconds(T0 + 1000, 4));
    });
  });

  describe('when an entry is paused and the partition moves', () => {
    it('should persist the pause: the next owner fires nothing of it and catches nothing up on resume', async () => {
      const e = everySecond({ misfire: 'fire-all' });
      const { clock, kafka, run, fired, a } = await owned(e);
      await run(2000);
      expect(await a.scheduler.setPaused('a', true, 'ops@host')).toMatchObject({
        ok: true,
        message: 'a paused',
      });
      await run(2000);
      await a.scheduler.stop({ deadlineMs: 1000 });
      const b = await instance(kafka, clock, [e]);
      b.member.join({ [STATE]: [0] });
      await run(2000);
      expect(fired()).toEqual(seconds(T0 + 1000, 2));
      expect(b.scheduler.status(['a'])[0]?.state).toBe('paused');
      const resumed = await b.scheduler.setPaused('a', false, 'ops@host');
      expect(resumed.message).toBe(`a resumed; next fire ${new Date(T0 + 7000).toISOString()}`);
      await run(1000);
      expect(fired()).toEqual([...seconds(T0 + 1000, 2), new Date(T0 + 7000).toISOString()]);
    });
  });

  describe('when an entry is triggered by command', () => {
    it('should publish a task off the whole second and leave the last fired instant alone', async () => {
      const { clock, kafka, run, fired } = cluster();
      const { scheduler, member } = await instance(kafka, clock, [everySecond()]);
      expect(await scheduler.trigger('a')).toMatchObject({ ok: false });
      member.join({ [STATE]: [0] });
      await run(1000);
      const outcome = await scheduler.trigger('a');
      expect(outcome).toMatchObject({ ok: true, taskId: `a@${new Date(T0 + 1300).toISOString()}` });
      expect(scheduler.status(['a'])[0]?.lastFiredAt).toBe(new Date(T0 + 1000).toISOString());
      await run(1000);
      expect(fired()).toEqual([
        ...seconds(T0 + 1000, 1),
        new Date(T0 + 1300).toISOString(),
        ...seconds(T0 + 2000, 1),
      ]);
    });
  });

  describe('when an entry has MaxRuns and its partition moves to another instance', () => {
    it('should count its runs in the state record and stop at the limit, across the move and a trigger', async () => {
      const e = everySecond({ maxRuns: 5 });
      const { clock, kafka, run, fired, a } = await owned(e);
      await run(2000);
      // A trigger is not a run of the spec: it leaves the count alone.
      await a.scheduler.trigger('a');
      expect(a.scheduler.status(['a'])[0]).toMatchObject({ state: 'enabled', maxRuns: 5, runCount: 2 });
      await a.scheduler.stop({ deadlineMs: 1000 });
      const b = await instance(kafka, clock, [e]);
      await run(3000);
      b.member.join({ [STATE]: [0] });
      await run(5000);
      const spec = fired().filter((t) => Date.parse(t) % 1000 === 0);
      // Two runs by a, the latest missed instant caught up by b (fire-once), then two more: five in all.
      expect(spec).toEqual([...seconds(T0 + 1000, 2), ...seconds(T0 + 5000, 3)]);
      expect(b.scheduler.status(['a'])[0]).toMatchObject({ state: 'ended', runCount: 5, nextFireTimes: [] });
      const last = kafka.records(STATE, 0).at(-1)?.value?.toString('utf8');
      expect(JSON.parse(last ?? '{}')).toMatchObject({
        v: 1,
        runs: 5,
        lastFiredAt: seconds(T0 + 7000, 1)[0],
      });
    });
  });

  describe('when an entry has an EndAt that passes', () => {
    it('should fire up to it, then report ended', async () => {
      const { run, fired, a } = await owned(everySecond({ endAt: new Date(T0 + 3000).toISOString() }));
      await run(6000);
      expect(fired()).toEqual(seconds(T0 + 1000, 3));
      expect(a.scheduler.status(['a'])[0]).toMatchObject({ state: 'ended', nextFireTimes: [] });
    });
  });
});
