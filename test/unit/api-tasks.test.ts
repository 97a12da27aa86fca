import { afterEach, describe, expect, it } from 'vitest';
import { ApiTaskSource } from '../../src/scheduler/api-tasks.js';
import { EntrySources } from '../../src/scheduler/entry-sources.js';
import { GroupScheduler } from '../../src/scheduler/group-scheduler.js';
import { SCHEDULER_STATE_TOPIC, stateKey } from '../../src/shared/codecs/scheduler-state.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { partitionForKey } from '../../src/shared/kafka/index.js';
import type { Logger } from '../../src/shared/logger.js';
import { silentLogger } from '../../src/shared/logger.js';
import { definitionRecord, TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition } from '../../src/shared/tasks/definition.js';
import { BASE_HEADER, OP_HEADER } from '../../src/shared/tasks/task-log.js';
import { transactionalIdOf } from '../../src/scheduler/partition-owner.js';
import { FakeClock } from './helpers/fake-clock.js';
import type { MemoryGroupMember } from './helpers/memory-group-member.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { settle } from './helpers/settle.js';

const T0 = Date.parse('2026-11-25T08:00:00.000Z');
const GROUP = 'g';
const STATE = SCHEDULER_STATE_TOPIC;
const PARTITIONS = 4;
const partitionOf = (id: string): number => partitionForKey(stateKey(GROUP, id), PARTITIONS);

function def(id: string, extra: Partial<TaskDefinition> = {}): TaskDefinition {
  return {
    v: 1,
    id,
    name: id,
    processor: 'NoopProcessor',
    topic: 't',
    schedule: { runAt: new Date(T0 + 5000).toISOString() },
    timeZone: 'UTC',
    misfire: 'fire-once',
    enabled: true,
    group: GROUP,
    createdAt: new Date(T0).toISOString(),
    updatedAt: new Date(T0).toISOString(),
    ...extra,
  };
}

/** A scheduler instance wired as `taskscheduler` wires it: the API tasks of its state partitions, one at a time. */
interface Instance {
  scheduler: GroupScheduler;
  source: ApiTaskSource;
  member: MemoryGroupMember;
  /** What the source handed the scheduler, in order. */
  changes: string[];
}

const running: Instance[] = [];
afterEach(async () => {
  for (const i of running.splice(0)) {
    await i.source.stop();
    await i.scheduler.stop({ deadlineMs: 0 });
  }
});

function cluster() {
  const clock = new FakeClock(T0 + 300);
  const kafka = new MemoryKafka(clock);
  kafka.partitions.set(STATE, PARTITIONS);
  kafka.partitions.set(TASKS_TOPIC, 3);
  const run = async (ms: number): Promise<void> => {
    for (let t = 0; t < ms; t += 250) {
      clock.advance(Math.min(250, ms - t));
      await settle();
    }
  };
  /** Every fire published, as `<scheduleId>@<instant>`. */
  const fires = (): string[] =>
    kafka
      .records('t', 0)
      .map(
        (r) => JSON.parse(r.value?.toString('utf8') ?? '{}') as { scheduleId: string; scheduledFor: string },
      )
      .map((t) => `${t.scheduleId}@${t.scheduledFor}`);
  const write = (d: TaskDefinition, headers: Record<string, string> = {}): void =>
    kafka.write([definitionRecord(d, headers)]);
  /** The offset of the last record of a key in the tasks topic (the version of its state). */
  const offsetOf = (id: string): string =>
    [0, 1, 2]
      .flatMap((p) => kafka.records(TASKS_TOPIC, p))
      .filter((r) => r.key?.toString() === id)
      .at(-1)!.offset;
  return { clock, kafka, run, fires, write, offsetOf };
}

async function instance(
  kafka: MemoryKafka,
  clock: FakeClock,
  logger: Logger = silentLogger,
): Promise<Instance> {
  const changes: string[] = [];
  const sources = new EntrySources(logger);
  const sink = {
    put: (e: ScheduleEntry) => {
      changes.push(`put ${e.id}`);
      sources.put(e);
    },
    remove: (id: string) => {
      changes.push(`remove ${id}`);
      sources.remove(id);
    },
  };
  const source = new ApiTaskSource(kafka.client(), GROUP, logger, sink, clock);
  sources.api = source;
  const scheduler = new GroupScheduler({
    kafka: kafka.client(),
    entries: [],
    group: GROUP,
    clock,
    logger,
    definitions: source,
  });
  sources.scheduler = scheduler;
  const member = kafka.members[kafka.members.length - 1] as MemoryGroupMember;
  await source.start();
  await scheduler.start();
  const i = { scheduler, source, member, changes };
  running.push(i);
  return i;
}

const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `task-${i}`);
const heldIds = (i: Instance): string[] => i.source.list().map((e) => e.id);

describe('ApiTaskSource', () => {
  it('should hold only the definitions of the state partitions its instance owns, and fire each once', async () => {
    const { clock, kafka, run, fires, write } = cluster();
    for (const id of ids(40)) write(def(id));
    write(def('other-group', { group: 'h' }));
    const a = await instance(kafka, clock);
    const b = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1] });
    b.member.join({ [STATE]: [2, 3] });
    await settle();
    expect(a.source.size + b.source.size).toBe(40);
    expect(a.source.size).toBeGreaterThan(0);
    expect(b.source.size).toBeGreaterThan(0);
    expect(heldIds(a).every((id) => [0, 1].includes(partitionOf(id)))).toBe(true);
    expect(heldIds(b).every((id) => [2, 3].includes(partitionOf(id)))).toBe(true);
    expect(a.scheduler.apiDefinitions).toBe(a.source.size);
    await run(6000);
    expect(fires().sort()).toEqual(
      ids(40)
        .map((id) => `${id}@${new Date(T0 + 5000).toISOString()}`)
        .sort(),
    );
  });

  it('should not parse a record whose tm-group header names another group or a partition not owned', async () => {
    const { clock, kafka } = cluster();
    const lines: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (m) => void lines.push(m), child: () => logger };
    const a = await instance(kafka, clock, logger);
    a.member.join({ [STATE]: [0] });
    await settle();
    const notOwned = ids(40).find((id) => partitionOf(id) !== 0) as string;
    const owned = ids(40).find((id) => partitionOf(id) === 0) as string;
    for (const [id, group] of [
      [notOwned, GROUP],
      ['x', 'h'],
      [owned, GROUP],
    ] as const)
      kafka.write([{ topic: TASKS_TOPIC, key: id, value: 'not json', headers: { 'tm-group': group } }]);
    await settle();
    expect(lines).toEqual([expect.stringContaining(`(task ${owned}): not JSON`)]);
    expect(a.source.size).toBe(0);
  });

  it('should apply a change to one definition alone: one put or remove, the new version firing', async () => {
    const { clock, kafka, run, fires, write } = cluster();
    for (const id of ids(20)) write(def(id));
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    expect(a.source.size).toBe(20);
    a.changes.length = 0;
    // A record without tm-group (an operator's, or written before the header existed) is parsed and held all the same.
    kafka.write([{ ...definitionRecord(def('task-3', { payload: { v: 2 } })), headers: {} }]);
    write(def('task-4'), { [OP_HEADER]: 'create' }); // rejected: the id exists
    write(def('new', { schedule: { runAt: new Date(T0 + 4000).toISOString() } }), { [OP_HEADER]: 'create' });
    kafka.write([
      {
        topic: TASKS_TOPIC,
        key: 'task-5',
        value: null,
        headers: { [OP_HEADER]: 'delete', [BASE_HEADER]: '999' },
      },
    ]);
    kafka.write([{ topic: TASKS_TOPIC, key: 'task-6', value: null }]);
    await settle();
    expect(a.changes).toEqual(['put task-3', 'put new', 'remove task-6']);
    expect(a.source.size).toBe(20);
    await run(6000);
    const fired = fires();
    expect(fired.filter((f) => f.startsWith('task-6@'))).toEqual([]);
    expect(fired.filter((f) => f.startsWith('new@'))).toEqual([`new@${new Date(T0 + 4000).toISOString()}`]);
    expect(fired).toHaveLength(20);
    const payloadOf3 = kafka
      .records('t', 0)
      .map((r) => JSON.parse(r.value?.toString('utf8') ?? '{}') as { scheduleId: string; payload?: unknown })
      .find((t) => t.scheduleId === 'task-3')?.payload;
    expect(payloadOf3).toEqual({ v: 2 });
  });

  it('should apply the write rules to each key after deletes and repairs, whatever its version looks like', async () => {
    const { clock, kafka, write, offsetOf } = cluster();
    write(def('a'), { [OP_HEADER]: 'create' });
    write(def('b'), { [OP_HEADER]: 'create' });
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    const tombstone = (id: string, headers: Record<string, string>) =>
      kafka.write([{ topic: TASKS_TOPIC, key: id, value: null, headers }]);
    a.changes.length = 0;
    // a: deleted, then an update of the deleted task is rejected, and a create accepted.
    tombstone('a', { [OP_HEADER]: 'delete', [BASE_HEADER]: offsetOf('a') });
    write(def('a', { payload: { v: 'update of a deleted task' } }), {
      [OP_HEADER]: 'update',
      [BASE_HEADER]: offsetOf('a'),
    });
    write(def('a', { payload: { v: 'created again' } }), { [OP_HEADER]: 'create' });
    // c: first seen in a repair whose version is not an offset (a writer's restatement); an update based on that
    // version is accepted, one based on the record's offset is not.
    kafka.write([{ ...definitionRecord(def('c')), headers: { [OP_HEADER]: 'repair', 'tm-version': 'v-7' } }]);
    write(def('c', { payload: { v: 'on the offset' } }), {
      [OP_HEADER]: 'update',
      [BASE_HEADER]: offsetOf('c'),
    });
    write(def('c', { payload: { v: 'on v-7' } }), { [OP_HEADER]: 'update', [BASE_HEADER]: 'v-7' });
    await settle();
    expect(a.changes).toEqual(['remove a', 'put a', 'put c', 'put c']);
    const payloads = Object.fromEntries(a.source.list().map((e) => [e.id, e.payload]));
    expect(payloads).toEqual({ a: { v: 'created again' }, b: undefined, c: { v: 'on v-7' } });
  });

  it("should forget a deleted key once the topic's delete.retention.ms passed twice, and not before", async () => {
    const { clock, kafka, write, offsetOf } = cluster();
    kafka.deleteRetentionMs = 10_000;
    for (const id of ids(5)) write(def(id), { [OP_HEADER]: 'create' });
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    const base = offsetOf('task-0');
    kafka.write([
      {
        topic: TASKS_TOPIC,
        key: 'task-0',
        value: null,
        headers: { [OP_HEADER]: 'delete', [BASE_HEADER]: base },
      },
    ]);
    await settle();
    expect([a.source.size, a.source.keyStates]).toEqual([4, 5]);
    // Within the retention, an update of the deleted task is rejected.
    clock.advance(9_000);
    write(def('task-0'), { [OP_HEADER]: 'update', [BASE_HEADER]: base });
    await settle();
    expect(heldIds(a)).not.toContain('task-0');
    // Records keep coming (each a new task); after twice the retention the deleted key is no longer kept.
    for (let i = 0; i < 3; i++) {
      clock.advance(10_000);
      write(def(`later-${i}`), { [OP_HEADER]: 'create' });
      await settle();
    }
    expect([a.source.size, a.source.keyStates]).toEqual([7, 7]);
  });

  it('should load the definitions of partitions gained in a rebalance before arming them, and drop released ones', async () => {
    const { clock, kafka, run, fires, write } = cluster();
    const all = ids(40);
    for (const id of all) write(def(id));
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    expect(a.source.size).toBe(40);
    const b = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1] });
    b.member.join({ [STATE]: [2, 3] });
    await settle();
    expect(a.source.size + b.source.size).toBe(40);
    expect(a.source.size).toBeLessThan(40);
    expect(heldIds(b).every((id) => [2, 3].includes(partitionOf(id)))).toBe(true);
    // Changes while split reach only the owner.
    write(def('late', { schedule: { runAt: new Date(T0 + 8000).toISOString() } }), { [OP_HEADER]: 'create' });
    await settle();
    const lateOwner = [0, 1].includes(partitionOf('late')) ? a : b;
    expect(lateOwner.source.list().some((e) => e.id === 'late')).toBe(true);
    await run(6000);
    expect(fires()).toHaveLength(40);
    // b stops: a takes its partitions back, reading the topic again for them.
    running.splice(running.indexOf(b), 1);
    await b.source.stop();
    await b.scheduler.stop({ deadlineMs: 1000 });
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    expect(a.source.size).toBe(41);
    await run(4000);
    const fired = fires();
    expect(fired).toHaveLength(41);
    expect(new Set(fired).size).toBe(41);
    expect(fired).toContain(`late@${new Date(T0 + 8000).toISOString()}`);
  });

  it('should reject a create of an id another group has, also when that partition is gained later', async () => {
    const { clock, kafka, run, fires, write } = cluster();
    const dup = ids(40).find((id) => partitionOf(id) === 3) as string;
    write(def(dup, { group: 'h' }), { [OP_HEADER]: 'create' });
    write(def(dup), { [OP_HEADER]: 'create' }); // rejected by every reader: the id exists
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1, 2] });
    await settle();
    write(def(dup), { [OP_HEADER]: 'create' }); // rejected again, though a does not keep partition 3
    await settle();
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    expect(a.source.size).toBe(0);
    await run(6000);
    expect(fires()).toEqual([]);
  });

  it('should keep the definitions of a partition taken over again after a fence, without reading the topic again', async () => {
    const { clock, kafka, run, fires, write } = cluster();
    for (const id of ids(20)) write(def(id));
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await settle();
    const reads = kafka.followed.filter((t) => t === TASKS_TOPIC).length;
    const fenced = partitionOf('task-0');
    await kafka.producer({ transactionalId: transactionalIdOf(GROUP, fenced) }).fence();
    // The coordinator does not answer meanwhile (so it does not say the partition is still A's).
    a.member.silence();
    await run(6000);
    const inFenced = ids(20).filter((id) => partitionOf(id) === fenced);
    expect(fires()).toHaveLength(20 - inFenced.length);
    // The rebalance that follows gives it the partition again: fenced, state read, its held entries armed.
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    await run(1000);
    expect(kafka.followed.filter((t) => t === TASKS_TOPIC)).toHaveLength(reads);
    expect(a.source.size).toBe(20);
    expect(fires().sort()).toEqual(
      ids(20)
        .map((id) => `${id}@${new Date(T0 + 5000).toISOString()}`)
        .sort(),
    );
  });

  it('should hand over to the new read without losing a change written while it read the topic', async () => {
    const { clock, kafka, run, fires, write } = cluster();
    for (const id of ids(10)) write(def(id));
    const a = await instance(kafka, clock);
    a.member.join({ [STATE]: [0, 1] });
    await settle(3);
    // The new read of the topic for [2,3] is under way: changes now reach the current read, then the new one.
    a.member.join({ [STATE]: [0, 1, 2, 3] });
    for (const id of ['x1', 'x2', 'x3']) write(def(id), { [OP_HEADER]: 'create' });
    await settle();
    expect(a.source.size).toBe(13);
    await run(6000);
    expect(fires()).toHaveLength(13);
  });
});
