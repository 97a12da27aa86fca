import { describe, expect, it } from 'vitest';
import { BatchWorker } from '../../src/consumer/batch-worker.js';
import type { ProcessorContext } from '../../src/processors/types.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { consumerFixture, memoryBatch, taskRecord } from './helpers/consumer-fixture.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { settle } from './helpers/settle.js';

/**
 * A processor whose tasks finish when the test says: `finish(scheduleId)` resolves the running task of that
 * schedule; `log` has `start <id>` and `end <id>` in the order they happened.
 */
function gated() {
  const log: string[] = [];
  const gates = new Map<string, () => void>();
  const signals = new Map<string, AbortSignal>();
  return {
    log,
    signals,
    finish: (id: string): void => gates.get(id)?.(),
    processor: {
      name: 'P',
      process: (t: TaskMessage, ctx: ProcessorContext): Promise<void> => {
        const id = `${t.scheduleId}@${ctx.source.offset}`;
        log.push(`start ${id}`);
        signals.set(id, ctx.signal);
        return new Promise<void>((resolve, reject) => {
          gates.set(id, () => {
            log.push(`end ${id}`);
            resolve();
          });
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true });
        });
      },
    },
  };
}

function setup(concurrency = 10, revokeTimeoutMs = 5000, maxPendingPerPartition?: number) {
  const p = gated();
  const fx = consumerFixture([p.processor], { maxAttempts: 1 });
  const drain = new AbortController();
  const worker = new BatchWorker({
    runner: fx.runner,
    slots: fx.slots(concurrency),
    clock: fx.clock,
    logger: silentLogger,
    drain: drain.signal,
    revokeTimeoutMs,
    heartbeatEveryMs: 500,
    ...(maxPendingPerPartition === undefined ? {} : { maxPendingPerPartition }),
  });
  /** The final event of each task of the fixture's events: `taskId status`. */
  const ends = (): string[] =>
    fx
      .events()
      .filter((e: StatusEvent) => ['FINISHED', 'CANCELLED', 'SKIPPED'].includes(e.status))
      .map((e) => `${e.taskId.split('@')[0]}@${e.source?.offset ?? '?'} ${e.status}`);
  return { ...p, fx, worker, drain, ends };
}

/** Lets the worker's stop finish: the tasks have ended, its waits run on the fake clock. */
async function stopped(worker: BatchWorker, clock: { advance(ms: number): void }): Promise<void> {
  let done = false;
  const stop = worker.stop().finally(() => (done = true));
  for (let i = 0; i < 100 && !done; i++) {
    await settle();
    clock.advance(500);
  }
  await stop;
}

describe('BatchWorker', () => {
  describe('when a batch holds records of several keys', () => {
    it('should run different keys at once and the same key in order', async () => {
      const { worker, log, finish, fx } = setup();
      const { batch, committed } = memoryBatch([
        taskRecord(0, { key: 'a' }),
        taskRecord(1, { key: 'b' }),
        taskRecord(2, { key: 'a' }),
      ]);
      await worker.handle(batch);
      await settle();
      expect(log).toEqual(['start a@0', 'start b@1']);
      finish('a@0');
      await settle();
      expect(log).toEqual(['start a@0', 'start b@1', 'end a@0', 'start a@2']);
      finish('b@1');
      finish('a@2');
      await settle();
      expect(committed.at(-1)).toBe('3');
      await stopped(worker, fx.clock);
    });

    it('should bound the tasks running at once by the shared slots', async () => {
      const { worker, log, finish, fx } = setup(1);
      const { batch } = memoryBatch([taskRecord(0, { key: 'a' }), taskRecord(1, { key: 'b' })]);
      await worker.handle(batch);
      await settle();
      expect(log).toEqual(['start a@0']);
      finish('a@0');
      await settle();
      expect(log).toEqual(['start a@0', 'end a@0', 'start b@1']);
      finish('b@1');
      await stopped(worker, fx.clock);
    });
  });

  describe('when records finish out of order', () => {
    it('should commit only to after the contiguous finished run, and move the fetch on at once', async () => {
      const { worker, finish, fx } = setup();
      const { batch, resolved, committed } = memoryBatch([
        taskRecord(0, { key: 'a' }),
        taskRecord(1, { key: 'b' }),
        taskRecord(2, { key: 'c' }),
      ]);
      await worker.handle(batch);
      expect(resolved).toEqual(['2']);
      await settle();
      finish('b@1');
      finish('c@2');
      await settle();
      expect(committed).toEqual([]);
      finish('a@0');
      await settle();
      expect(committed).toEqual(['3']);
      await stopped(worker, fx.clock);
    });
  });

  describe('when one schedule runs slowly and its partition gets more records', () => {
    it('should run the later records of other schedules while it runs, committing only before it', async () => {
      const { worker, log, finish, fx } = setup();
      const first = memoryBatch([taskRecord(0, { key: 'slow' }), taskRecord(1, { key: 'b' })]);
      await worker.handle(first.batch);
      await settle();
      finish('b@1');
      const second = memoryBatch([taskRecord(2, { key: 'c' }), taskRecord(3, { key: 'slow' })]);
      await worker.handle(second.batch);
      await settle();
      finish('c@2');
      await settle();
      expect(log).toEqual(['start slow@0', 'start b@1', 'end b@1', 'start c@2', 'end c@2']);
      expect([...first.committed, ...second.committed]).toEqual([]);
      finish('slow@0');
      await settle();
      expect(log.slice(-2)).toEqual(['end slow@0', 'start slow@3']);
      expect(second.committed.at(-1)).toBe('3');
      finish('slow@3');
      await settle();
      expect(second.committed.at(-1)).toBe('4');
      await stopped(worker, fx.clock);
    });

    it('should not take a record a fetch reads again', async () => {
      const { worker, log, finish, fx } = setup();
      const rec = taskRecord(0, { key: 'a' });
      await worker.handle(memoryBatch([rec]).batch);
      await worker.handle(memoryBatch([rec, taskRecord(1, { key: 'b' })]).batch);
      await settle();
      expect(log).toEqual(['start a@0', 'start b@1']);
      finish('a@0');
      finish('b@1');
      await stopped(worker, fx.clock);
    });

    it('should make the fetch wait while the partition holds its most pending records', async () => {
      const { worker, finish, fx } = setup(10, 5000, 2);
      let returned = false;
      const handled = worker
        .handle(memoryBatch([taskRecord(0, { key: 'a' }), taskRecord(1, { key: 'a' })]).batch)
        .then(() => (returned = true));
      await settle();
      expect(returned).toBe(false);
      finish('a@0');
      await settle();
      fx.clock.advance(500);
      await handled;
      finish('a@1');
      await stopped(worker, fx.clock);
    });
  });

  describe('when a schedule has the overlap policy skip', () => {
    it('should end a run SKIPPED while the previous one runs, naming it, and run the next after it ended', async () => {
      const { worker, log, finish, fx, ends } = setup();
      await worker.handle(
        memoryBatch([
          taskRecord(0, { key: 'a', overlap: 'skip' }),
          taskRecord(1, { key: 'a', overlap: 'skip' }),
        ]).batch,
      );
      await settle();
      expect(log).toEqual(['start a@0']);
      expect(ends()).toEqual(['a@1 SKIPPED']);
      const skipped = fx.events().find((e) => e.status === 'SKIPPED');
      expect(skipped?.error).toMatch(
        /run a@\S+ of the same schedule was still (running|waiting) \(overlap skip\)/,
      );
      finish('a@0');
      await settle();
      const { batch, committed } = memoryBatch([taskRecord(2, { key: 'a', overlap: 'skip' })]);
      await worker.handle(batch);
      await settle();
      expect(log).toEqual(['start a@0', 'end a@0', 'start a@2']);
      finish('a@2');
      await settle();
      expect(committed.at(-1)).toBe('3');
      expect(fx.outcomes.map((o) => o.status)).toEqual(['SKIPPED', 'FINISHED', 'FINISHED']);
      await stopped(worker, fx.clock);
    });
  });

  describe('when a schedule has the overlap policy replace', () => {
    it('should cancel the running and the waiting runs, saying by which, and run the new one', async () => {
      const { worker, log, finish, fx, signals, ends } = setup();
      await worker.handle(
        memoryBatch([taskRecord(0, { key: 'a' }), taskRecord(1, { key: 'a' })]).batch, // queue: 1 waits
      );
      await settle();
      expect(log).toEqual(['start a@0']);
      await worker.handle(memoryBatch([taskRecord(2, { key: 'a', overlap: 'replace' })]).batch);
      await settle();
      expect(signals.get('a@0')?.aborted).toBe(true);
      expect(log).toEqual(['start a@0', 'start a@2']);
      expect(ends()).toEqual(['a@0 CANCELLED', 'a@1 CANCELLED']);
      const cancelled = fx.events().filter((e) => e.status === 'CANCELLED');
      expect(cancelled.map((e) => e.attempt)).toEqual([1, 0]);
      for (const e of cancelled) expect(e.error).toMatch(/^replaced by a@\S+ \(overlap replace\)$/);
      finish('a@2');
      await stopped(worker, fx.clock);
      expect(ends()).toEqual(['a@0 CANCELLED', 'a@1 CANCELLED', 'a@2 FINISHED']);
    });
  });

  describe('when a schedule has the overlap policy allow', () => {
    it('should run its runs side by side', async () => {
      const { worker, log, finish, fx } = setup();
      await worker.handle(
        memoryBatch([
          taskRecord(0, { key: 'a', overlap: 'allow' }),
          taskRecord(1, { key: 'a', overlap: 'allow' }),
        ]).batch,
      );
      await settle();
      expect(log).toEqual(['start a@0', 'start a@1']);
      finish('a@1');
      finish('a@0');
      await stopped(worker, fx.clock);
    });
  });

  describe('when the group rebalances', () => {
    it('should take nothing new, finish the running tasks, commit, and take again once joined', async () => {
      const { worker, log, finish, fx } = setup(1);
      const { batch, committed, state } = memoryBatch([
        taskRecord(0, { key: 'a' }),
        taskRecord(1, { key: 'b' }),
      ]);
      await worker.handle(batch);
      await settle();
      let joinable = false;
      const before = worker.beforeJoin().then(() => (joinable = true));
      for (let i = 0; i < 3; i++) {
        await settle();
        fx.clock.advance(500);
      }
      expect(joinable).toBe(false);
      expect(state.heartbeats).toBeGreaterThan(0);
      finish('a@0');
      await before;
      expect(log).toEqual(['start a@0', 'end a@0']);
      expect(committed.at(-1)).toBe('1');
      // Until the group is joined again, nothing is taken.
      const next = memoryBatch([taskRecord(1, { key: 'b' })]);
      const refused = worker.handle(next.batch);
      fx.clock.advance(100);
      await refused;
      await settle();
      expect(log).not.toContain('start b@1');
      expect(next.resolved).toEqual([]);
      worker.joined();
      await worker.handle(next.batch);
      await settle();
      finish('b@1');
      await settle();
      expect(next.committed).toEqual(['2']);
      await stopped(worker, fx.clock);
    });

    it('should abort a task that outlives the revoke deadline and leave it for re-delivery', async () => {
      const { worker, signals, fx } = setup(10, 3000);
      const { batch, committed } = memoryBatch([taskRecord(0, { key: 'a' })]);
      await worker.handle(batch);
      await settle();
      const before = worker.beforeJoin();
      for (let i = 0; i < 5; i++) {
        await settle();
        fx.clock.advance(500);
      }
      expect(signals.get('a@0')?.aborted).toBe(false);
      fx.clock.advance(500);
      await settle();
      fx.clock.advance(500);
      await before;
      expect(signals.get('a@0')?.aborted).toBe(true);
      expect(committed).toEqual([]);
      expect(fx.dlq()).toEqual([]);
    });
  });

  describe('when the consumer stops', () => {
    it('should wait for the running tasks until the drain aborts them, and commit what finished', async () => {
      const { worker, signals, fx, drain, finish } = setup();
      const { batch, committed } = memoryBatch([taskRecord(0, { key: 'a' }), taskRecord(1, { key: 'b' })]);
      await worker.handle(batch);
      await settle();
      const stop = worker.stop();
      finish('a@0');
      await settle();
      drain.abort(new Error('drain deadline passed'));
      fx.clock.advance(500);
      await stop;
      expect(signals.get('b@1')?.aborted).toBe(true);
      expect(committed).toEqual(['1']);
    });
  });
});
