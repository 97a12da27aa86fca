import { describe, expect, it } from 'vitest';
import { RunHistory } from '../../src/api/run-history.js';
import { Cancels } from '../../src/consumer/cancels.js';
import { LateStarts } from '../../src/consumer/late-starts.js';
import type { ProcessorContext } from '../../src/processors/types.js';
import { cancelRequest } from '../../src/shared/codecs/cancel-request.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { lazyChild } from '../../src/shared/logger.js';
import type { Logger } from '../../src/shared/logger.js';
import { consumerFixture, T0, taskRecord } from './helpers/consumer-fixture.js';
import { FakeClock } from './helpers/fake-clock.js';
import { settle } from './helpers/settle.js';

const never = new AbortController().signal;

/** A processor whose runs wait until the test ends them (`finish`, `fail`), keeping their contexts. */
function held() {
  const runs: Array<{ ctx: ProcessorContext; finish(): void; fail(err: Error): void }> = [];
  return {
    runs,
    processor: {
      name: 'P',
      process: (_t: unknown, ctx: ProcessorContext) =>
        new Promise<void>((resolve, reject) => runs.push({ ctx, finish: resolve, fail: reject })),
    },
  };
}

function historyOf(events: StatusEvent[]): RunHistory {
  const h = new RunHistory();
  for (const e of events) h.fold(e);
  return h;
}

describe('TaskRunner with --executing-after-ms', () => {
  describe('when a run ends before the threshold', () => {
    it('should write only its final event, saying when the attempt started and who ran it', async () => {
      const fx = consumerFixture([{ name: 'P', process: () => Promise.resolve() }], {
        executingAfterMs: 500,
      });
      const startedAt = new Date(fx.clock.now()).toISOString();
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['FINISHED/1']);
      expect(fx.events()[0]).toMatchObject({ startedAt, by: { host: 'test', pid: 1, role: 'consumer' } });
      // Nothing written later either.
      fx.clock.advance(1000);
      await settle();
      expect(fx.statuses()).toEqual(['FINISHED/1']);
      const run = historyOf(fx.events()).latest('s0');
      expect(run).toMatchObject({
        state: 'FINISHED',
        attempts: 1,
        startedAt,
        consumer: { host: 'test', pid: 1 },
      });
    });
  });

  describe('when a run goes on past the threshold', () => {
    it('should write EXECUTING at the threshold, with the start, so that it shows RUNNING meanwhile', async () => {
      const { processor, runs } = held();
      const fx = consumerFixture([processor], { executingAfterMs: 500 });
      const startedAt = new Date(fx.clock.now()).toISOString();
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      fx.clock.advance(499);
      await settle();
      expect(fx.statuses()).toEqual([]);
      fx.clock.advance(1);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1']);
      expect(fx.events()[0]).toMatchObject({ startedAt, at: new Date(fx.clock.now()).toISOString() });
      expect(historyOf(fx.events()).latest('s0')).toMatchObject({ state: 'RUNNING', startedAt, attempts: 1 });
      runs[0]?.finish();
      await expect(result).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FINISHED/1']);
      expect(historyOf(fx.events()).latest('s0')).toMatchObject({ state: 'FINISHED', startedAt });
    });

    it('should write each waiting attempt its EXECUTING in its turn, with one timer for all', async () => {
      const { processor, runs } = held();
      const fx = consumerFixture([processor], { executingAfterMs: 500 });
      const first = fx.runner.run(taskRecord(0), never);
      await settle();
      fx.clock.advance(200);
      const second = fx.runner.run(taskRecord(1), never);
      await settle();
      fx.clock.advance(300);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1']);
      expect(fx.events()[0]?.taskId).toMatch(/^s0@/);
      fx.clock.advance(200);
      await settle();
      expect(fx.events().map((e) => e.taskId.slice(0, 2))).toEqual(['s0', 's1']);
      for (const r of runs) r.finish();
      await Promise.all([first, second]);
    });
  });

  describe('when a processor reports progress before the threshold', () => {
    it('should write the EXECUTING first, so readers keep the progress', async () => {
      const { processor, runs } = held();
      const fx = consumerFixture([processor], { executingAfterMs: 500 });
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      runs[0]?.ctx.progress(0.5, 'half');
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'PROGRESS/1']);
      fx.clock.advance(1000);
      await settle();
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'PROGRESS/1']);
      expect(historyOf(fx.events()).latest('s0')).toMatchObject({
        state: 'RUNNING',
        progress: { fraction: 0.5, message: 'half' },
      });
      runs[0]?.finish();
      await result;
    });
  });

  describe('when short attempts fail and a retry succeeds', () => {
    it('should write each attempt its FAILED and the last its FINISHED, each saying when it started', async () => {
      const { processor, runs } = held();
      const fx = consumerFixture([processor], { executingAfterMs: 500 });
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      const first = new Date(fx.clock.now()).toISOString();
      runs[0]?.fail(new Error('boom'));
      await settle();
      expect(fx.statuses()).toEqual(['FAILED/1']);
      expect(fx.events()[0]).toMatchObject({ startedAt: first, error: 'boom' });
      expect(historyOf(fx.events()).latest('s0')).toMatchObject({
        state: 'RETRYING',
        attempts: 1,
        startedAt: first,
      });
      fx.clock.advance(1000);
      await settle();
      const second = new Date(fx.clock.now()).toISOString();
      runs[1]?.finish();
      await expect(result).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['FAILED/1', 'FINISHED/2']);
      expect(historyOf(fx.events()).latest('s0')).toMatchObject({
        state: 'FINISHED',
        attempts: 2,
        startedAt: second,
        error: 'boom',
      });
    });
  });

  describe('when a short run is cancelled', () => {
    it('should end CANCELLED saying when it started, aborting the signal its processor reads', async () => {
      const { processor, runs } = held();
      const cancels = new Cancels(() => T0);
      cancels.caughtUp();
      const fx = consumerFixture([processor], { executingAfterMs: 500, cancels });
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      const signal = runs[0]?.ctx.signal;
      expect(signal?.aborted).toBe(false);
      expect(runs[0]?.ctx.signal).toBe(signal);
      cancels.add(
        cancelRequest(taskRecord(0).headers['task-id'] ?? '', new Date(T0), 'api', { user: 'alice' }),
      );
      await expect(result).resolves.toBe('done');
      expect(signal?.aborted).toBe(true);
      expect(fx.statuses()).toEqual(['CANCELLED/1']);
      expect(fx.events()[0]?.startedAt).toBe(new Date(T0 + 60_000).toISOString());
    });
  });

  describe('when the drain aborts an attempt whose processor never read its signal', () => {
    it('should abandon the attempt, and give a signal read afterwards already aborted', async () => {
      const { processor, runs } = held();
      const fx = consumerFixture([processor], { executingAfterMs: 500 });
      const drain = new AbortController();
      const result = fx.runner.run(taskRecord(0), drain.signal);
      await settle();
      drain.abort(new Error('drain deadline'));
      await expect(result).resolves.toBe('interrupted');
      expect(runs[0]?.ctx.signal.aborted).toBe(true);
      await settle();
      expect(fx.statuses()).toEqual(['FAILED/1']);
    });
  });
});

describe('RunHistory across a rolling upgrade', () => {
  const by = { host: 'old', pid: 7, role: 'consumer' as const };
  const ev = (status: StatusEvent['status'], at: string, extra: Partial<StatusEvent> = {}): StatusEvent => ({
    v: 1,
    taskId: 's@2026-11-25T08:00:00.000Z',
    scheduleId: 's',
    status,
    at,
    attempt: 1,
    by,
    ...extra,
  });

  it('should read an old consumer’s EXECUTING then FINISHED (no startedAt) as before', () => {
    const h = historyOf([
      ev('SCHEDULED', '2026-11-25T08:00:00.001Z', { attempt: 0, by: { ...by, role: 'scheduler' } }),
      ev('EXECUTING', '2026-11-25T08:00:00.010Z'),
      ev('FINISHED', '2026-11-25T08:00:00.020Z', { durationMs: 10 }),
    ]);
    expect(h.latest('s')).toMatchObject({
      state: 'FINISHED',
      firedAt: '2026-11-25T08:00:00.001Z',
      startedAt: '2026-11-25T08:00:00.010Z',
      finishedAt: '2026-11-25T08:00:00.020Z',
      attempts: 1,
      durationMs: 10,
      consumer: { host: 'old', pid: 7 },
    });
  });

  it('should read a new consumer’s final event alone, and a late EXECUTING by its startedAt', () => {
    const alone = historyOf([
      ev('FINISHED', '2026-11-25T08:00:00.020Z', { startedAt: '2026-11-25T08:00:00.011Z' }),
    ]);
    expect(alone.latest('s')).toMatchObject({
      state: 'FINISHED',
      startedAt: '2026-11-25T08:00:00.011Z',
      attempts: 1,
    });
    const late = historyOf([
      ev('EXECUTING', '2026-11-25T08:00:00.511Z', { startedAt: '2026-11-25T08:00:00.011Z' }),
    ]);
    expect(late.latest('s')).toMatchObject({ state: 'RUNNING', startedAt: '2026-11-25T08:00:00.011Z' });
  });

  it('should drop the progress of an earlier attempt when a later one is known from its final event only', () => {
    const h = historyOf([
      ev('EXECUTING', '2026-11-25T08:00:00.010Z'),
      ev('PROGRESS', '2026-11-25T08:00:00.500Z', { progress: { fraction: 0.3 } }),
      ev('FAILED', '2026-11-25T08:00:01.000Z', { error: 'boom' }),
      ev('FINISHED', '2026-11-25T08:00:02.000Z', { attempt: 2, startedAt: '2026-11-25T08:00:01.900Z' }),
    ]);
    const run = h.latest('s');
    expect(run).toMatchObject({ state: 'FINISHED', attempts: 2, startedAt: '2026-11-25T08:00:01.900Z' });
    expect(run?.progress).toBeUndefined();
  });
});

describe('LateStarts', () => {
  it('should write at once with threshold 0, and never for an attempt that ended before its turn', () => {
    const clock = new FakeClock(T0);
    const written: string[] = [];
    new LateStarts(clock, 0).add(clock.now(), () => written.push('now'));
    expect(written).toEqual(['now']);
    const late = new LateStarts(clock, 100);
    const a = late.add(clock.now(), () => written.push('a'));
    late.add(clock.now(), () => written.push('b'));
    late.end(a);
    clock.advance(100);
    expect(written).toEqual(['now', 'b']);
    expect(late.size).toBe(0);
  });
});

describe('lazyChild', () => {
  it('should make the child only when a line is written, and skip debug lines when debug is off', () => {
    const made: unknown[] = [];
    const lines: string[] = [];
    let debug = false;
    const base: Logger = {
      error: (m) => void lines.push(`error ${m}`),
      warn: (m) => void lines.push(`warn ${m}`),
      info: (m) => void lines.push(`info ${m}`),
      debug: (m) => void lines.push(`debug ${m}`),
      child: (fields) => {
        made.push(fields);
        return base;
      },
      isDebugEnabled: () => debug,
    };
    const log = lazyChild(base, { taskId: 't' });
    log.debug('quiet');
    expect(made).toEqual([]);
    debug = true;
    log.debug('loud');
    log.error('bad');
    expect(made).toEqual([{ taskId: 't' }]);
    expect(lines).toEqual(['debug loud', 'error bad']);
  });
});
