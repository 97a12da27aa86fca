import { describe, expect, it } from 'vitest';
import { Cancels } from '../../src/consumer/cancels.js';
import {
  cancelRecord,
  cancelRequest,
  describeCancel,
  parseCancelRequest,
} from '../../src/shared/codecs/cancel-request.js';
import type { ProcessorContext } from '../../src/processors/types.js';
import { consumerFixture, T0, taskRecord } from './helpers/consumer-fixture.js';
import { settle } from './helpers/settle.js';

const never = new AbortController().signal;
const taskIdOf = (offset: number) => `s${offset}@${new Date(T0 + offset * 1000).toISOString()}`;

function cancelsWith(...taskIds: string[]): Cancels {
  const cancels = new Cancels(() => T0);
  cancels.caughtUp();
  for (const id of taskIds)
    cancels.add(cancelRequest(id, new Date(T0), 'api', { user: 'alice', reason: 'wrong customer' }));
  return cancels;
}

/** A processor that runs until its signal aborts, then throws what it was aborted with (as the built-ins do). */
function untilAborted() {
  const contexts: ProcessorContext[] = [];
  return {
    contexts,
    processor: {
      name: 'P',
      process: (_t: unknown, ctx: ProcessorContext) => {
        contexts.push(ctx);
        return new Promise<never>((_, reject) =>
          ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error), { once: true }),
        );
      },
    },
  };
}

describe('cancel requests', () => {
  it('should round-trip through their record and refuse what is not one', () => {
    const req = cancelRequest('s1@2026-11-25T08:00:01.000Z', new Date(T0), 'operator', {
      reason: `  ${'r'.repeat(600)}  `,
    });
    expect(req.reason).toHaveLength(500);
    const rec = cancelRecord(req);
    expect(rec).toMatchObject({
      topic: 'taskmanager.cancels',
      key: req.taskId,
      headers: { 'task-id': req.taskId },
    });
    expect(parseCancelRequest(Buffer.from(rec.value as string))).toEqual(req);
    expect(parseCancelRequest(Buffer.from('{"v":1,"taskId":"x"}'))).toBeUndefined();
    expect(parseCancelRequest(Buffer.from('garbage'))).toBeUndefined();
    expect(parseCancelRequest(null)).toBeUndefined();
    expect(describeCancel(cancelRequest('x', new Date(T0), 'api', { user: 'alice' }))).toBe(
      'cancelled by alice (api)',
    );
  });
});

describe('TaskRunner with cancel requests', () => {
  describe('when a task is cancelled before it starts', () => {
    it('should never run it, end it CANCELLED with attempt 0 and who asked, and give its slot back', async () => {
      const { processor, contexts } = untilAborted();
      const fx = consumerFixture([processor], { cancels: cancelsWith(taskIdOf(3)) });
      await expect(fx.runner.run(taskRecord(3), never)).resolves.toBe('done');
      expect(contexts).toEqual([]);
      expect(fx.statuses()).toEqual(['CANCELLED/0']);
      expect(fx.events()[0]).toMatchObject({
        taskId: taskIdOf(3),
        error: 'cancelled by alice (api): wrong customer',
      });
      expect(fx.dlq()).toEqual([]);
      expect(fx.outcomes).toEqual([{ taskId: taskIdOf(3), status: 'CANCELLED', attempts: 0 }]);
    });
  });

  describe('when the requests made before the consumer started are still being read', () => {
    it('should start no task until they are, then honour them', async () => {
      const { processor, contexts } = untilAborted();
      const cancels = new Cancels(() => T0);
      const fx = consumerFixture([processor], { cancels });
      const result = fx.runner.run(taskRecord(4), never);
      await settle();
      expect(fx.statuses()).toEqual([]);
      cancels.add(cancelRequest(taskIdOf(4), new Date(T0), 'api', { user: 'alice' }));
      cancels.caughtUp();
      await expect(result).resolves.toBe('done');
      expect(contexts).toEqual([]);
      expect(fx.statuses()).toEqual(['CANCELLED/0']);
    });
  });

  describe('when a running task is cancelled', () => {
    it('should abort its signal with the request, and end it CANCELLED: no retry, no DLQ', async () => {
      const { processor, contexts } = untilAborted();
      const cancels = cancelsWith();
      const fx = consumerFixture([processor], { cancels });
      const result = fx.runner.run(taskRecord(5), never);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1']);
      cancels.add(cancelRequest(taskIdOf(5), new Date(T0), 'operator', { reason: 'stuck' }));
      expect(contexts[0]?.signal.aborted).toBe(true);
      await expect(result).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'CANCELLED/1']);
      expect(fx.events()[1]?.error).toMatch(/^cancelled by operator on .*: stuck$/);
      expect(fx.dlq()).toEqual([]);
      // Another task's attempt is untouched by it.
      const other = fx.runner.run(taskRecord(6), never);
      await settle();
      expect(contexts[1]?.signal.aborted).toBe(false);
      cancels.add(cancelRequest(taskIdOf(6), new Date(T0), 'api', { user: 'bob' }));
      await expect(other).resolves.toBe('done');
    });

    it('should end CANCELLED also when the processor ignores its signal', async () => {
      const cancels = cancelsWith();
      const fx = consumerFixture([{ name: 'P', process: () => new Promise(() => undefined) }], { cancels });
      const result = fx.runner.run(taskRecord(1), never);
      await settle();
      cancels.add(cancelRequest(taskIdOf(1), new Date(T0), 'api', { user: 'alice' }));
      await expect(result).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'CANCELLED/1']);
    });
  });

  describe('when a task is cancelled between two attempts', () => {
    it('should not start the next attempt, nor wait for its backoff', async () => {
      const attempts: number[] = [];
      const cancels = cancelsWith();
      const fx = consumerFixture(
        [
          {
            name: 'P',
            process: async (_t, ctx) => {
              attempts.push(ctx.attempt);
              throw new Error('boom');
            },
          },
        ],
        { cancels },
      );
      const result = fx.runner.run(taskRecord(2), never);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FAILED/1']);
      // During the backoff (1 s): it ends without waiting for it.
      cancels.add(cancelRequest(taskIdOf(2), new Date(T0), 'api', { user: 'alice' }));
      await expect(result).resolves.toBe('done');
      expect(attempts).toEqual([1]);
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FAILED/1', 'CANCELLED/1']);
    });
  });
});

describe('Cancels', () => {
  it('should forget requests older than it keeps them, oldest first', () => {
    let now = T0;
    const cancels = new Cancels(() => now, 60_000);
    cancels.add(cancelRequest('old', new Date(T0), 'api'));
    now = T0 + 120_000;
    for (let i = 0; i < 1000; i++) cancels.add(cancelRequest(`new-${i}`, new Date(now), 'api'));
    expect(cancels.requestOf('old')).toBeUndefined();
    expect(cancels.requestOf('new-0')).toBeDefined();
    expect(cancels.size).toBe(1000);
  });
});
