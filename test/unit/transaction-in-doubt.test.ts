import { describe, expect, it } from 'vitest';
import type { Producer } from 'kafkajs';
import { systemClock } from '../../src/shared/clock.js';
import { partitionForKey, KafkaProducer, TransactionInDoubtError } from '../../src/shared/kafka/index.js';
import { RecordsDroppedError } from '../../src/shared/kafka/client.js';
import type { KafkaClient } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { Logger } from '../../src/shared/logger.js';
import { recordingLogger } from './helpers/recording-logger.js';
import type { Clock } from '../../src/shared/clock.js';
import { decodeTaskMessage, taskIdFor } from '../../src/shared/codecs/task-message.js';
import { backfillFire } from '../../src/scheduler/backfill.js';
import type { Fire } from '../../src/scheduler/fire-loop.js';
import { SCHEDULER_STATE_TOPIC, parseState } from '../../src/shared/codecs/scheduler-state.js';
import { PartitionOwner } from '../../src/scheduler/partition-owner.js';
import { cronEntry } from './helpers/entries.js';

type Msg = { topic: string; key: string | null; value: string | Buffer | null };

/**
 * The transaction coordinator of one transactional id, as far as these tests need it. `failNextCommit` makes the
 * next EndTxn(commit) fail on the client's side: 'lost' before the coordinator got it (the transaction is aborted
 * when the id is initialised again), 'after' once it had it (it completes the commit then).
 */
class Coordinator {
  committed: Msg[] = [];
  failNextCommit: 'lost' | 'after' | undefined;
  /** The next send answers for no partition, as kafkajs 2.2.4 does for one that moved during its retry. */
  dropNextSend = false;
  /** The next send writes its records twice, as kafkajs 2.2.4 does for one that moved to a broker it had not asked. */
  doubleNextSend = false;
  /** This many of the next sends fail as with a broker killed (kill -9): the connection is refused. */
  refuseSends = 0;
  private inDoubt: { records: Msg[]; commits: boolean } | undefined;

  /** InitProducerId: settles a transaction left in doubt by an earlier producer of the id. */
  initProducerId(): void {
    if (this.inDoubt?.commits) this.committed.push(...this.inDoubt.records);
    this.inDoubt = undefined;
  }

  endTxn(records: Msg[]): void {
    const mode = this.failNextCommit;
    this.failNextCommit = undefined;
    if (mode) {
      this.inDoubt = { records, commits: mode === 'after' };
      throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    }
    this.committed.push(...records);
  }
}

/** kafkajs 2.2.4's transactional producer where it matters: a failed EndTxn leaves it in COMMITTING for good. */
class FakeKafkajsProducer {
  private state: 'UNINITIALIZED' | 'READY' | 'TRANSACTING' | 'COMMITTING' = 'UNINITIALIZED';
  private records: Msg[] = [];

  constructor(private readonly coordinator: Coordinator) {}

  async connect(): Promise<void> {}
  async disconnect(): Promise<void> {}

  async transaction() {
    if (this.state === 'UNINITIALIZED') {
      this.coordinator.initProducerId();
      this.state = 'READY';
    }
    if (this.state !== 'READY')
      throw new Error(`Transaction state exception: Invalid transition attempt from state ${this.state}`);
    this.state = 'TRANSACTING';
    this.records = [];
    return {
      sendBatch: async ({ topicMessages }: { topicMessages: Array<{ topic: string; messages: Msg[] }> }) => {
        if (this.coordinator.refuseSends > 0) {
          this.coordinator.refuseSends--;
          throw new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
        }
        const answer: Array<{ topicName: string; partition: number }> = [];
        const dropped = this.coordinator.dropNextSend;
        const copies = this.coordinator.doubleNextSend ? 2 : 1;
        this.coordinator.dropNextSend = this.coordinator.doubleNextSend = false;
        // One answer per partition written, as a broker gives.
        for (let copy = 0; copy < copies; copy++) {
          const written = new Set<string>();
          for (const t of topicMessages)
            for (const m of t.messages) {
              if (dropped) continue;
              this.records.push({ ...m, topic: t.topic });
              const partition = partitionForKey(text(m.key), PARTITIONS);
              if (!written.has(`${t.topic}/${partition}`)) answer.push({ topicName: t.topic, partition });
              written.add(`${t.topic}/${partition}`);
            }
        }
        return answer;
      },
      commit: async () => {
        if (this.state !== 'TRANSACTING') throw new Error(`cannot commit in state ${this.state}`);
        this.state = 'COMMITTING';
        this.coordinator.endTxn(this.records);
        this.state = 'READY';
      },
      abort: async () => {
        if (this.state !== 'TRANSACTING') throw new Error(`cannot abort in state ${this.state}`);
        this.state = 'READY';
      },
    };
  }
}

const PARTITIONS = 4;
const producerOf = (c: Coordinator) =>
  new KafkaProducer(
    () => new FakeKafkajsProducer(c) as unknown as Producer,
    async (topics) => new Map(topics.map((t) => [t, PARTITIONS])),
  );
const record = (key: string): Msg & { topic: string } => ({ topic: 't', key, value: key });
const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

describe('a transactional producer whose commit failed with the broker away', () => {
  it('should say the outcome is unknown, refuse more until reset, and work again after a reset', async () => {
    const c = new Coordinator();
    const p = producerOf(c);
    await p.connect();
    c.failNextCommit = 'after';
    const err = await p.sendInTransaction([record('a')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionInDoubtError);
    expect((err as TransactionInDoubtError).mayHaveCommitted).toBe(true);
    await expect(p.sendInTransaction([record('b')])).rejects.toBeInstanceOf(TransactionInDoubtError);
    await p.reset();
    await p.sendInTransaction([record('b')]);
    expect(c.committed.map((m) => m.key)).toEqual(['a', 'b']);
  });
});

describe('a transactional send whose answer lacks a partition (kafkajs dropped its records)', () => {
  it('should abort instead of committing, and ask for a fresh producer', async () => {
    const c = new Coordinator();
    const p = producerOf(c);
    await p.connect();
    c.dropNextSend = true;
    const err = await p.sendInTransaction([record('a'), record('b')]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransactionInDoubtError);
    expect((err as TransactionInDoubtError).mayHaveCommitted).toBe(false);
    expect((err as Error).cause).toBeInstanceOf(RecordsDroppedError);
    expect(p.needsReset).toBe(true);
    expect(c.committed).toEqual([]);
    await p.reset();
    await p.sendInTransaction([record('a'), record('b')]);
    expect(c.committed.map((m) => m.key)).toEqual(['a', 'b']);
  });
});

describe('a partition owner whose transaction ended in doubt', () => {
  const entry = cronEntry('e1', '* * * * * *', { topic: 'tasks' });
  const t0 = Date.parse('2026-12-06T10:00:00Z');
  const ownerOf = (
    c: Coordinator,
    mayRefence = () => true,
    o: { clock?: Clock; logger?: Logger; groupJoins?: () => number; reads?: { count: number } } = {},
  ) =>
    new PartitionOwner({
      kafka: { producer: () => producerOf(c) } as unknown as KafkaClient,
      group: 'g',
      partition: 0,
      clock: o.clock ?? systemClock,
      logger: o.logger ?? silentLogger,
      scheduler: { host: 'h', pid: 1, group: 'g' },
      onFenced: () => undefined,
      mayRefence,
      groupJoins: o.groupJoins ?? (() => 1),
      isPublished: async (f) => committedTaskIds(c).includes(taskIdFor(f.entry.id, f.scheduledFor)),
      readCommitted: async () => {
        if (o.reads) o.reads.count++;
        const last = new Map<string, number>();
        for (const m of c.committed.filter((x) => x.topic === SCHEDULER_STATE_TOPIC)) {
          const s = parseState(Buffer.from(text(m.value)));
          if (s) last.set(text(m.key).replace(/^g\//, ''), s.lastFiredMs);
        }
        return (id) => last.get(id);
      },
    });
  const committedTaskIds = (c: Coordinator) =>
    c.committed
      .filter((m) => m.topic === 'tasks')
      .map((m) => decodeTaskMessage(Buffer.from(text(m.value)))?.taskId);

  for (const mode of ['after', 'lost', 'dropped', 'doubled'] as const) {
    it(`should publish every fire exactly once when ${mode === 'dropped' || mode === 'doubled' ? `kafkajs ${mode} records of a send` : `the commit was ${mode === 'after' ? 'applied' : 'lost'}`}`, async () => {
      const c = new Coordinator();
      const owner = ownerOf(c);
      await owner.fence();
      owner.activate();
      if (mode === 'dropped') c.dropNextSend = true;
      else if (mode === 'doubled') c.doubleNextSend = true;
      else c.failNextCommit = mode;
      await owner.publish([{ entry, scheduledFor: t0 }]);
      await owner.publish([{ entry, scheduledFor: t0 + 1000 }]);
      await owner.stop({ deadlineMs: 1000 });

      expect(committedTaskIds(c)).toEqual(['e1@2026-12-06T10:00:00.000Z', 'e1@2026-12-06T10:00:01.000Z']);
    });
  }

  it('should try again at most every 500 ms while a broker fails over, logging the first three failures and then one in 20', async () => {
    const c = new Coordinator();
    const waits: number[] = [];
    // The system clock, except that the owner's waits between tries are recorded and end at once.
    const clock: Clock = {
      ...systemClock,
      setTimeout: (fn, ms) => {
        waits.push(ms);
        return systemClock.setTimeout(fn, 0);
      },
    };
    const logger = recordingLogger();
    const lines = logger.lines;
    const owner = ownerOf(c, () => true, { clock, logger });
    await owner.fence();
    owner.activate();
    c.refuseSends = 45;
    await owner.publish([{ entry, scheduledFor: t0 }]);
    const retries = [...waits];
    await owner.stop({ deadlineMs: 1000 });

    expect(committedTaskIds(c)).toEqual(['e1@2026-12-06T10:00:00.000Z']);
    // Each refused send is followed by a reset of the producer (a fresh one, fenced again), then a try.
    expect(retries.length).toBe(45);
    expect(Math.max(...retries)).toBe(500);
    expect(retries.slice(0, 4)).toEqual([100, 200, 400, 500]);
    const failures = lines.filter((l) => l.includes('cannot publish'));
    expect(failures.map((l) => /attempt=(\d+)/.exec(l)?.[1])).toEqual(['1', '2', '3', '20', '40']);
  });

  it('should not read the state again after a send that was not committed, with no rebalance since', async () => {
    const c = new Coordinator();
    const reads = { count: 0 };
    const owner = ownerOf(c, () => true, { reads });
    await owner.fence();
    owner.activate();
    c.refuseSends = 1;
    await owner.publish([{ entry, scheduledFor: t0 }]);
    c.failNextCommit = 'after';
    await owner.publish([{ entry, scheduledFor: t0 + 1000 }]);
    await owner.stop({ deadlineMs: 1000 });
    expect(committedTaskIds(c)).toEqual(['e1@2026-12-06T10:00:00.000Z', 'e1@2026-12-06T10:00:01.000Z']);
    // Only the commit in doubt needed the state (did it commit after all?); the refused send did not.
    expect(reads.count).toBe(1);
  });

  /** An active owner whose next commit fails `mode`. */
  const activeOwner = async (mode: 'after' | 'lost') => {
    const c = new Coordinator();
    const owner = ownerOf(c);
    await owner.fence();
    owner.activate();
    c.failNextCommit = mode;
    return { c, owner };
  };

  for (const mode of ['after', 'lost'] as const) {
    it(`should publish a backfill exactly once when its transaction's commit was ${mode === 'after' ? 'applied' : 'lost'}`, async () => {
      // Backfilled fires move no state: whether their transaction committed is read from the task topic.
      const { c, owner } = await activeOwner(mode);
      await owner.publish([backfillFire(entry, t0 - 2000), backfillFire(entry, t0 - 1000)]);
      await owner.publish([{ entry, scheduledFor: t0 }]);
      await owner.stop({ deadlineMs: 1000 });
      expect(committedTaskIds(c)).toEqual([
        'e1@2026-12-06T09:59:58.000Z',
        'e1@2026-12-06T09:59:59.000Z',
        'e1@2026-12-06T10:00:00.000Z',
      ]);
    });
  }

  for (const mode of ['after', 'lost'] as const) {
    it(`should write a deadline alert once when its transaction's commit was ${mode === 'after' ? 'applied' : 'lost'}`, async () => {
      // A deadline alert moves no entry state: the timer's tombstone in the state read again tells (`written`).
      const { c, owner } = await activeOwner(mode);
      const alert = [record('alert'), { topic: SCHEDULER_STATE_TOPIC, key: 'g/deadline/e1@x', value: null }];
      const written = () => c.committed.some((m) => m.key === 'g/deadline/e1@x');
      await owner.publish([], alert, written);
      await owner.stop({ deadlineMs: 1000 });
      expect(c.committed.map((m) => m.key)).toEqual(['alert', 'g/deadline/e1@x']);
    });
  }

  /**
   * The cluster test's zombie: a broker kill costs an owner its group membership with `queued` and `more` fires (its
   * send dropped); another instance owns the partition meanwhile and publishes `meanwhile`; then a rebalance gives
   * the partition back (its join count moved on), and `later` is queued. What became of `queued`, and every taskId.
   */
  const zombieRace = async (queued: Fire[], more: Fire[], meanwhile: Fire[], later: Fire[]) => {
    const c = new Coordinator();
    let inGroup = false;
    const zombie = ownerOf(c, () => inGroup, { groupJoins: () => (inGroup ? 2 : 1) });
    await zombie.fence();
    zombie.activate();
    c.dropNextSend = true;
    const first = zombie.publish(queued);
    zombie.enqueue(more);

    const other = ownerOf(c);
    await other.fence();
    other.activate();
    await other.publish(meanwhile);
    await other.stop({ deadlineMs: 1000 });

    inGroup = true;
    const outcome = await first.then(
      () => 'published',
      (err: unknown) => (err instanceof Error ? err.message : String(err)),
    );
    zombie.enqueue(later);
    await zombie.stop({ deadlineMs: 5000 });
    return { outcome, taskIds: committedTaskIds(c) };
  };
  const at = (ms: number): Fire => ({ entry, scheduledFor: ms });

  it('should not publish again what another owner published while this instance was out of its group', async () => {
    const r = await zombieRace([at(t0)], [at(t0 + 1000)], [at(t0), at(t0 + 1000)], [at(t0 + 2000)]);
    expect(r.outcome).toBe('published');
    expect(r.taskIds).toEqual([
      'e1@2026-12-06T10:00:00.000Z',
      'e1@2026-12-06T10:00:01.000Z',
      'e1@2026-12-06T10:00:02.000Z',
    ]);
  });

  it('should leave out a queued backfill another owner may have published meanwhile, and say so', async () => {
    const backfill = backfillFire(entry, t0 - 1000);
    const r = await zombieRace([backfill], [], [backfill, at(t0)], [at(t0 + 1000)]);
    expect(r.outcome).toMatch(/backfilled fires were left out/);
    expect(r.taskIds).toEqual([
      'e1@2026-12-06T09:59:59.000Z',
      'e1@2026-12-06T10:00:00.000Z',
      'e1@2026-12-06T10:00:01.000Z',
    ]);
  });
});
