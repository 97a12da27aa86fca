import { describe, expect, it } from 'vitest';
import { BatchWorker } from '../../src/consumer/batch-worker.js';
import type { ProcessorContext } from '../../src/processors/types.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { consumerFixture, memoryBatch, taskRecord } from './helpers/consumer-fixture.js';
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

function setup(concurrency = 10, revokeTimeoutMs = 5000) {
  const p = gated();
  const fx = consumerFixture([p.processor], { maxAttempts: 1 });
  const worker = new BatchWorker({
    runner: fx.runner,
    slots: fx.slots(concurrency),
    clock: fx.clock,
    logger: silentLogger,
    revokeTimeoutMs,
    heartbeatEveryMs: 500,
  });
  return { ...p, fx, worker };
}

const never = new AbortController().signal;

describe('BatchWorker.handle', () => {
  describe('when a batch holds records of several keys', () => {
    it('should run different keys at once and the same key in order', async () => {
      const { worker, log, finish } = setup();
      const { batch } = memoryBatch([
        taskRecord(0, { key: 'a' }),
        taskRecord(1, { key: 'b' }),
        taskRecord(2, { key: 'a' }),
      ]);
      const done = worker.handle(batch, never);
      await settle();
      expect(log).toEqual(['start a@0', 'start b@1']);
      finish('a@0');
      await settle();
      expect(log).toEqual(['start a@0', 'start b@1', 'end a@0', 'start a@2']);
      finish('b@1');
      finish('a@2');
      await done;
    });

    it('should bound the tasks running at once by the shared slots', async () => {
      const { worker, log, finish } = setup(1);
      const { batch } = memoryBatch([taskRecord(0, { key: 'a' }), taskRecord(1, { key: 'b' })]);
      const done = worker.handle(batch, never);
      await settle();
      expect(log).toEqual(['start a@0']);
      finish('a@0');
      await settle();
      expect(log).toEqual(['start a@0', 'end a@0', 'start b@1']);
      finish('b@1');
      await done;
    });
  });

  describe('when records finish out of order', () => {
    it('should resolve the offset only to the end of the contiguous finished run', async () => {
      const { worker, finish } = setup();
      const { batch, resolved } = memoryBatch([
        taskRecord(0, { key: 'a' }),
        taskRecord(1, { key: 'b' }),
        taskRecord(2, { key: 'c' }),
      ]);
      const done = worker.handle(batch, never);
      await settle();
      finish('b@1');
      finish('c@2');
      await settle();
      expect(resolved).toEqual([]);
      finish('a@0');
      await done;
      expect(resolved).toEqual(['2']);
    });
  });

  describe('when the group starts rebalancing during the batch', () => {
    it('should take no new record, finish the running ones, resolve them, then throw the rebalance', async () => {
      const { worker, log, finish, fx } = setup(1);
      const { batch, resolved, state } = memoryBatch([
        taskRecord(0, { key: 'a' }),
        taskRecord(1, { key: 'b' }),
      ]);
      const rebalance = Object.assign(new Error('The group is rebalancing'), {
        type: 'REBALANCE_IN_PROGRESS',
      });
      state.heartbeatError = rebalance;
      const done = worker.handle(batch, never);
      await settle();
      fx.clock.advance(500);
      await settle();
      finish('a@0');
      const err = await done.catch((e: unknown) => e);
      expect(err).toBe(rebalance);
      expect(log).toEqual(['start a@0', 'end a@0']);
      expect(resolved).toEqual(['0']);
      // Until the group is joined again, no partition takes records.
      const next = memoryBatch([taskRecord(2, { key: 'c' })]);
      await worker.handle(next.batch, never);
      expect(log).not.toContain('start c@2');
      worker.joined();
      const again = worker.handle(next.batch, never);
      await settle();
      finish('c@2');
      await again;
      expect(next.resolved).toEqual(['2']);
    });
  });

  describe('when the consumer stops and a task outlives the revoke deadline', () => {
    it('should abort it at the deadline and leave it unresolved for re-delivery', async () => {
      const { worker, signals, fx } = setup(10, 3000);
      const { batch, resolved, state } = memoryBatch([taskRecord(0, { key: 'a' })]);
      const done = worker.handle(batch, never);
      await settle();
      state.running = false;
      fx.clock.advance(500);
      await settle();
      fx.clock.advance(2999);
      await settle();
      expect(signals.get('a@0')?.aborted).toBe(false);
      fx.clock.advance(1);
      await done;
      expect(signals.get('a@0')?.aborted).toBe(true);
      expect(resolved).toEqual([]);
      expect(fx.dlq()).toEqual([]);
    });
  });

  describe('while tasks run longer than the heartbeat interval', () => {
    it('should heartbeat every interval', async () => {
      const { worker, finish, fx } = setup();
      const { batch, state } = memoryBatch([taskRecord(0, { key: 'a' })]);
      const done = worker.handle(batch, never);
      for (let i = 0; i < 4; i++) {
        await settle();
        fx.clock.advance(500);
      }
      await settle();
      expect(state.heartbeats).toBe(4);
      finish('a@0');
      await done;
    });
  });
});
