import { describe, expect, it } from 'vitest';
import { SlotLease } from '../../src/consumer/semaphore.js';
import type { Processor, ProcessorContext } from '../../src/processors/types.js';
import { NonRetriableError, RetriableError } from '../../src/shared/errors.js';
import { consumerFixture, taskRecord, TOPIC } from './helpers/consumer-fixture.js';
import { settle } from './helpers/settle.js';

const never = new AbortController().signal;

/** A processor that fails its first `failures` attempts, then succeeds with `{ ok: attempt }`. */
function flaky(failures: number, fail: (attempt: number) => Error = (n) => new Error(`boom ${n}`)) {
  const contexts: ProcessorContext[] = [];
  return {
    contexts,
    processor: {
      name: 'P',
      process: async (_t: unknown, ctx: ProcessorContext) => {
        contexts.push(ctx);
        if (ctx.attempt <= failures) throw fail(ctx.attempt);
        return { details: { ok: ctx.attempt } };
      },
    },
  };
}

describe('TaskRunner.run', () => {
  describe('when a processor fails twice, then succeeds', () => {
    it('should retry after the backoff and end FINISHED on the third attempt', async () => {
      const { processor } = flaky(2);
      const fx = consumerFixture([processor]);
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FAILED/1']);
      fx.clock.advance(1000);
      await settle();
      fx.clock.advance(1000);
      await settle();
      await expect(result).resolves.toBe('done');
      expect(fx.statuses()).toEqual([
        'EXECUTING/1',
        'FAILED/1',
        'EXECUTING/2',
        'FAILED/2',
        'EXECUTING/3',
        'FINISHED/3',
      ]);
      expect(fx.events().at(-1)?.result).toEqual({ ok: 3 });
      expect(fx.dlq()).toEqual([]);
      expect(fx.outcomes).toEqual([
        { taskId: expect.stringMatching(/^s0@/), status: 'FINISHED', attempts: 3 },
      ]);
    });
  });

  describe('when every attempt fails', () => {
    it('should dead-letter the record after maxAttempts with its final FAILED event', async () => {
      const fx = consumerFixture([flaky(99).processor]);
      const result = fx.runner.run(taskRecord(4), never);
      for (let i = 0; i < 3; i++) {
        await settle();
        fx.clock.advance(1000);
      }
      await expect(result).resolves.toBe('done');
      const [dead] = fx.dlq();
      expect(dead?.headers).toMatchObject({
        'dlq-reason': 'attempts-exhausted',
        'dlq-attempts': '3',
        'dlq-error': 'boom 3',
        'dlq-original-topic': TOPIC,
        'dlq-original-offset': '4',
      });
      expect(dead?.value).toEqual(taskRecord(4).value);
      expect(fx.events().at(-1)).toMatchObject({
        status: 'FAILED',
        final: true,
        dlqReason: 'attempts-exhausted',
      });
      expect(fx.outcomes.map((o) => o.status)).toEqual(['DLQ']);
    });
  });

  describe('when the processor throws NonRetriableError', () => {
    it('should dead-letter at once, with the details it attached', async () => {
      const fx = consumerFixture([
        flaky(1, () => new NonRetriableError('no such customer', { details: { customer: 7 } })).processor,
      ]);
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      expect(fx.dlq()[0]?.headers).toMatchObject({ 'dlq-reason': 'non-retriable', 'dlq-attempts': '1' });
      expect(fx.events().at(-1)).toMatchObject({ status: 'FAILED', final: true, result: { customer: 7 } });
    });
  });

  describe('when a processor is plain JavaScript that breaks the Promise contract', () => {
    it('should finish a run whose processor returned its result without a promise', async () => {
      const fx = consumerFixture([
        { name: 'P', process: (() => ({ details: { sync: true } })) as unknown as Processor['process'] },
      ]);
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      expect(fx.events().at(-1)).toMatchObject({ status: 'FINISHED', result: { sync: true } });
    });

    it('should count a synchronous throw as a failed attempt and retry it', async () => {
      let calls = 0;
      const process = ((_t: unknown, ctx: ProcessorContext) => {
        calls++;
        if (ctx.attempt === 1) throw new Error('thrown before any promise');
        return Promise.resolve();
      }) as Processor['process'];
      const fx = consumerFixture([{ name: 'P', process }]);
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      expect(fx.events().at(-1)).toMatchObject({ status: 'FAILED', error: 'thrown before any promise' });
      fx.clock.advance(1000);
      await settle();
      await expect(result).resolves.toBe('done');
      expect(calls).toBe(2);
      expect(fx.statuses().at(-1)).toBe('FINISHED/2');
    });

    it('should give a processor that destructures its context working progress, output and logger', async () => {
      const fx = consumerFixture([
        {
          name: 'P',
          process: async (_t: unknown, { progress, output, logger, attempt, source }: ProcessorContext) => {
            progress(0.5, 'half');
            output('stdout', 'a line\n');
            logger.info('logged');
            return { details: { attempt, offset: source.offset } };
          },
        },
      ]);
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      expect(fx.statuses()).toContain('PROGRESS/1');
      expect(fx.events().at(-1)).toMatchObject({ status: 'FINISHED', result: { attempt: 1, offset: '0' } });
    });
  });

  describe('when the record cannot be run', () => {
    it('should dead-letter an undecodable record as decode-error, after no attempt, giving its slot back', async () => {
      const fx = consumerFixture([flaky(0).processor]);
      const slots = fx.slots(1);
      const slot = new SlotLease(slots);
      await slot.acquire();
      const rec = { ...taskRecord(0), value: Buffer.from('not json'), headers: { 'task-id': 'x@1' } };
      await expect(fx.runner.run(rec, never, slot)).resolves.toBe('done');
      expect(fx.dlq()[0]?.headers).toMatchObject({ 'dlq-reason': 'decode-error', 'dlq-attempts': '0' });
      expect(fx.events()[0]).toMatchObject({ taskId: 'x@1', status: 'FAILED', final: true });
      expect(slots.available).toBe(1);
    });

    it('should dead-letter a task naming no known processor as unknown-processor', async () => {
      const fx = consumerFixture([flaky(0).processor]);
      await expect(fx.runner.run(taskRecord(0, { processor: 'Nope' }), never)).resolves.toBe('done');
      expect(fx.dlq()[0]?.headers['dlq-reason']).toBe('unknown-processor');
      expect(fx.dlq()[0]?.headers['dlq-error']).toBe('unknown processor "Nope"; known: P');
    });
  });

  describe('when an attempt outlives the task timeout', () => {
    it('should abort its signal, abandon it, and retry', async () => {
      const signals: AbortSignal[] = [];
      const fx = consumerFixture(
        [
          {
            name: 'P',
            // Ignores its signal: the runner must not wait for it.
            process: (_t, ctx) => {
              signals.push(ctx.signal);
              return ctx.attempt === 1 ? new Promise(() => undefined) : Promise.resolve();
            },
          },
        ],
        { taskTimeoutMs: 500 },
      );
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      fx.clock.advance(499);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1']);
      fx.clock.advance(1);
      await settle();
      expect(signals[0]?.aborted).toBe(true);
      expect(fx.events().at(-1)).toMatchObject({ status: 'FAILED', error: 'timed out after 500 ms' });
      fx.clock.advance(1000);
      await expect(result).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FAILED/1', 'EXECUTING/2', 'FINISHED/2']);
    });
  });

  describe('when the far side asks to be retried later (Retry-After)', () => {
    it('should not retry before that time, whatever the backoff says', async () => {
      const fx = consumerFixture([
        flaky(1, () => new RetriableError('busy', { retryAfterMs: 5000 })).processor,
      ]);
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      fx.clock.advance(4999);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FAILED/1']);
      fx.clock.advance(1);
      await expect(result).resolves.toBe('done');
      expect(fx.statuses().at(-1)).toBe('FINISHED/2');
    });
  });

  describe('when the drain deadline passes during a retry backoff', () => {
    it('should leave the record for re-delivery: interrupted, no DLQ, no FINISHED', async () => {
      const fx = consumerFixture([flaky(1).processor]);
      const drain = new AbortController();
      const result = fx.runner.run(taskRecord(0), drain.signal);
      await settle();
      drain.abort(new Error('drain deadline passed'));
      await expect(result).resolves.toBe('interrupted');
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FAILED/1']);
      expect(fx.dlq()).toEqual([]);
      expect(fx.outcomes).toEqual([{ taskId: expect.any(String), status: 'INTERRUPTED', attempts: 1 }]);
    });
  });

  describe('when Kafka refuses the FINISHED event for a while', () => {
    it('should write it again until acknowledged, and only then say done', async () => {
      const fx = consumerFixture([flaky(0).processor]);
      // The first request (EXECUTING and FINISHED together) and two retries of FINISHED fail.
      fx.failSends(3);
      let settled = false;
      const result = fx.runner.run(taskRecord(0), never).finally(() => (settled = true));
      for (let i = 0; i < 2; i++) {
        await settle();
        fx.clock.advance(1000);
      }
      await settle();
      expect(settled).toBe(false);
      fx.clock.advance(1000);
      await expect(result).resolves.toBe('done');
      expect(fx.statuses().filter((st) => st === 'FINISHED/1')).toHaveLength(1);
    });
  });

  describe('when it holds a concurrency slot', () => {
    it('should give the slot back during the retry backoff and take one again for the next attempt', async () => {
      const held: number[] = [];
      const fx = consumerFixture([
        {
          name: 'P',
          process: async (_t, ctx) => {
            held.push(slots.available);
            if (ctx.attempt === 1) throw new Error('boom');
          },
        },
      ]);
      const slots = fx.slots(1);
      const slot = new SlotLease(slots);
      await slot.acquire();
      const result = fx.runner.run(taskRecord(0), never, slot);
      await settle();
      expect(slots.available).toBe(1);
      fx.clock.advance(1000);
      await expect(result).resolves.toBe('done');
      expect(held).toEqual([0, 0]);
      expect(slots.available).toBe(1);
    });
  });
});
