import { describe, expect, it } from 'vitest';
import { RunLogSink } from '../../src/consumer/run-logs.js';
import type { TaskRunnerOptions } from '../../src/consumer/task-runner.js';
import { SecretSource } from '../../src/consumer/secrets.js';
import type { Processor, ProcessorContext } from '../../src/processors/types.js';
import { RunHistory } from '../../src/api/run-history.js';
import { RunLogIndex } from '../../src/api/run-logs.js';
import { BatchingSender } from '../../src/shared/kafka/index.js';
import type { InRecord, KafkaProducer } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { encodeJson } from '../../src/shared/messages.js';
import {
  LOGS_TOPIC,
  parseRunLogChunk,
  RUN_LOG_MAX_BYTES,
  RunLogFold,
  runLogRecord,
} from '../../src/shared/codecs/run-log.js';
import type { RunLogChunk } from '../../src/shared/codecs/run-log.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { consumerFixture, taskRecord, T0 } from './helpers/consumer-fixture.js';
import { FakeClock } from './helpers/fake-clock.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { recordingLogger } from './helpers/recording-logger.js';
import { settle } from './helpers/settle.js';

const never = new AbortController().signal;
const SECRET = 'tk-91b2-very-secret';

/** A processor that runs `body` with its context; `release` lets a waiting one go on. */
function scripted(body: (ctx: ProcessorContext, wait: () => Promise<void>) => Promise<void> | void) {
  const gates: Array<() => void> = [];
  const processor: Processor = {
    name: 'P',
    process: async (_t, ctx) => {
      await body(ctx, () => new Promise<void>((r) => gates.push(r)));
    },
  };
  return { processor, release: () => gates.shift()?.() };
}

/** A TaskRunner whose run logs go to an in-memory taskmanager.logs. */
function withLogs(processor: Processor, secrets?: SecretSource, options: Partial<TaskRunnerOptions> = {}) {
  const logsKafka = new MemoryKafka();
  const sink = new RunLogSink(
    new BatchingSender(logsKafka.producer() as unknown as KafkaProducer),
    silentLogger,
  );
  sink.enable();
  const fx = consumerFixture([processor], { runLogs: sink, ...(secrets ? { secrets } : {}), ...options });
  const chunks = (): RunLogChunk[] =>
    logsKafka.records(LOGS_TOPIC, 0).map((r) => {
      const c = parseRunLogChunk(r.value);
      if (!c) throw new Error(`not a chunk: ${r.value?.toString() ?? 'null'}`);
      return c;
    });
  const shown = () => {
    const fold = new RunLogFold();
    for (const c of chunks()) fold.add(c);
    return fold.view();
  };
  return { ...fx, chunks, shown, logsKafka };
}

/** A task record of processor P whose payload holds a secret reference. */
function secretTask(): InRecord {
  const rec = taskRecord(0);
  const task = JSON.parse(rec.value!.toString('utf8')) as Record<string, unknown>;
  return { ...rec, value: encodeJson({ ...task, payload: { token: { $secret: 'TOKEN' } } }) };
}

describe('run logs of a TaskRunner', () => {
  describe('when a processor logs lines in a burst and then waits', () => {
    it('should write them in one chunk after the flush delay, and the rest with the end of the attempt', async () => {
      const { processor, release } = scripted(async (ctx, wait) => {
        for (let i = 0; i < 10; i++) ctx.logger.info(`line ${i}`);
        ctx.logger.debug('not kept');
        await wait();
        ctx.logger.warn('last');
      });
      const fx = withLogs(processor);
      const result = fx.runner.run(taskRecord(0), never);
      await settle();
      expect(fx.chunks()).toEqual([]);
      fx.clock.advance(250);
      await settle();
      expect(fx.chunks().map((c) => c.lines.length)).toEqual([10]);
      release();
      await expect(result).resolves.toBe('done');
      await settle();
      const chunks = fx.chunks();
      expect(chunks.map((c) => [c.lines.length, c.end ?? false])).toEqual([
        [10, false],
        [1, true],
      ]);
      expect(chunks[1]?.lines[0]).toMatchObject({ stream: 'warn', text: 'last' });
      expect(fx.shown().lines.map((l) => l.text)).toEqual([
        ...Array.from({ length: 10 }, (_, i) => `line ${i}`),
        'last',
      ]);
      expect(fx.statuses()).toEqual(['EXECUTING/1', 'FINISHED/1']);
    });
  });

  describe('when a processor abandoned at its timeout logs only afterwards', () => {
    it('should keep none of it in the run log: the attempt’s log was closed when the attempt ended', async () => {
      let abandoned: ProcessorContext | undefined;
      const processor: Processor = {
        name: 'P',
        // The first attempt ignores its signal and never ends by itself; the second succeeds.
        process: (_t, ctx) => {
          if (ctx.attempt > 1) return Promise.resolve();
          abandoned = ctx;
          return new Promise<void>(() => undefined);
        },
      };
      const fx = withLogs(processor, undefined, { taskTimeoutMs: 1000 });
      const run = fx.runner.run(taskRecord(0), never);
      await settle();
      fx.clock.advance(1000);
      await settle();
      expect(fx.statuses()).toContain('FAILED/1');
      for (let i = 0; i < 3; i++) abandoned?.logger.info(`after the end ${i}`);
      fx.clock.advance(1000);
      await expect(run).resolves.toBe('done');
      fx.clock.advance(5000);
      await settle();
      expect(fx.statuses().at(-1)).toBe('FINISHED/2');
      expect(fx.chunks().flatMap((c) => c.lines.map((l) => l.text))).toEqual([]);
    });
  });

  describe('when a run logs more than 1,000 lines', () => {
    it('should keep the last 1,000, count the others, and write at most about three times the bound', async () => {
      const { processor } = scripted((ctx) => {
        for (let i = 0; i < 5000; i++) ctx.logger.info(`line ${i}`);
      });
      const fx = withLogs(processor);
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      await settle();
      const shown = fx.shown();
      expect(shown.lines).toHaveLength(1000);
      expect(shown.lines[0]?.text).toBe('line 4000');
      expect(shown.lines.at(-1)?.text).toBe('line 4999');
      expect(shown.dropped.lines).toBe(4000);
      const written = fx.chunks().reduce((n, c) => n + c.lines.length, 0);
      expect(written).toBeLessThanOrEqual(3000);
    });

    it('should keep the tail of lines logged over time past the bound, with no hole in what is shown', async () => {
      const { processor, release } = scripted(async (ctx, wait) => {
        for (let round = 0; round < 6; round++) {
          for (let i = 0; i < 400; i++) ctx.logger.info(`r${round} ${i}`);
          await wait();
        }
      });
      const fx = withLogs(processor);
      const result = fx.runner.run(taskRecord(0), never);
      for (let round = 0; round < 6; round++) {
        await settle();
        fx.clock.advance(250);
        await settle();
        release();
      }
      await expect(result).resolves.toBe('done');
      await settle();
      const shown = fx.shown();
      expect(shown.lines).toHaveLength(1000);
      expect(shown.lines[0]?.text).toBe('r3 200');
      expect(shown.lines.at(-1)?.text).toBe('r5 399');
      expect(shown.dropped.lines).toBe(2400 - 1000);
      expect(shown.ended).toEqual([1]);
    });
  });

  describe('when the lines weigh more than 64 KiB', () => {
    it('should keep the last 64 KiB and count the dropped bytes', async () => {
      const { processor } = scripted((ctx) => {
        for (let i = 0; i < 100; i++)
          ctx.output('stdout', `${String(i).padStart(3, '0')}${'x'.repeat(1020)}\n`);
      });
      const fx = withLogs(processor);
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      await settle();
      const shown = fx.shown();
      const kept = shown.lines.reduce((n, l) => n + Buffer.byteLength(l.text), 0);
      expect(kept).toBeLessThanOrEqual(RUN_LOG_MAX_BYTES);
      expect(shown.lines).toHaveLength(64);
      expect(shown.lines.at(-1)?.text.slice(0, 3)).toBe('099');
      expect(shown.lines[0]?.text.slice(0, 3)).toBe('036');
      expect(shown.dropped).toEqual({ lines: 36, bytes: 36 * 1023 });
    });
  });

  describe('when a processor logs or outputs a secret it resolved', () => {
    it('should write [redacted] instead, also when the value is split across output chunks', async () => {
      const { processor } = scripted((ctx) => {
        ctx.logger.info(`calling with ${SECRET}`, { token: SECRET });
        ctx.output('stdout', Buffer.from(`token=${SECRET.slice(0, 7)}`));
        ctx.output('stdout', Buffer.from(`${SECRET.slice(7)} done\n`));
        ctx.output('stderr', `${'y'.repeat(9000)}${SECRET}`);
        ctx.output('stderr', 'tail\n');
        ctx.progress(0.5, `half of ${SECRET}`);
      });
      const fx = withLogs(processor, new SecretSource({ env: { TASKMANAGER_SECRET_TOKEN: SECRET } }));
      await expect(fx.runner.run(secretTask(), never)).resolves.toBe('done');
      await settle();
      const all = JSON.stringify(fx.chunks()) + JSON.stringify(fx.events());
      expect(all).not.toContain(SECRET);
      expect(all).not.toContain(SECRET.slice(7));
      const texts = fx
        .shown()
        .lines.map((l) => `${l.stream}:${l.text.length > 100 ? l.text.slice(-40) : l.text}`);
      expect(texts).toContain('info:calling with [redacted] {"token":"[redacted]"}');
      expect(texts).toContain('stdout:token=[redacted] done');
      expect(texts.some((t) => t.startsWith('stderr:') && t.endsWith('[redacted]tail'))).toBe(true);
      expect(fx.events().find((e) => e.status === 'PROGRESS')?.progress).toEqual({
        fraction: 0.5,
        message: 'half of [redacted]',
      });
    });
  });

  describe('when no taskmanager.logs exists', () => {
    it('should run the task and write no log record', async () => {
      const logsKafka = new MemoryKafka();
      const sink = new RunLogSink(
        new BatchingSender(logsKafka.producer() as unknown as KafkaProducer),
        silentLogger,
      );
      const lines: string[] = [];
      await sink.open({ existingTopics: () => Promise.resolve(new Set<string>()) });
      const { processor } = scripted((ctx) => ctx.logger.info('hello'));
      const fx = consumerFixture([processor], { runLogs: sink, logger: recordingLogger(lines) });
      await expect(fx.runner.run(taskRecord(0), never)).resolves.toBe('done');
      await settle();
      expect(logsKafka.records(LOGS_TOPIC, 0)).toEqual([]);
      expect(lines.some((l) => l.includes('hello'))).toBe(true);
    });
  });
});

describe('RunLogSink', () => {
  it('should say once that writes fail, naming the task and the topic, and again after one succeeded', async () => {
    let failing = true;
    const lines: string[] = [];
    const producer = {
      send: () =>
        failing ? Promise.reject(new Error('Broker: topic authorization failed')) : Promise.resolve(),
    } as unknown as KafkaProducer;
    const sink = new RunLogSink(new BatchingSender(producer), recordingLogger(lines));
    const chunk = (n: number): RunLogChunk => ({
      v: 1,
      taskId: `s@${n}`,
      scheduleId: 's',
      attempt: 1,
      lines: [],
    });
    await sink.write(chunk(1));
    await sink.write(chunk(2));
    failing = false;
    await sink.write(chunk(3));
    failing = true;
    await sink.write(chunk(4));
    expect(lines.filter((l) => l.includes('cannot write'))).toEqual([
      expect.stringContaining(
        'cannot write the log of task s@1 (attempt 1) to taskmanager.logs: Broker: topic authorization failed',
      ),
      expect.stringContaining('cannot write the log of task s@4 (attempt 1)'),
    ]);
  });
});

describe('progress of a TaskRunner', () => {
  const progressOf = (events: StatusEvent[]) =>
    events.filter((e) => e.status === 'PROGRESS').map((e) => [e.progress?.fraction, e.at.slice(17)]);

  it('should write at most one PROGRESS a second, the latest when the second is up, and the last one at the end', async () => {
    const { processor, release } = scripted(async (ctx, wait) => {
      ctx.progress(0.1, 'start');
      ctx.progress(0.2);
      await wait();
      ctx.progress(0.3);
      ctx.progress(0.4);
      await wait();
      ctx.progress(0.9);
    });
    const fx = withLogs(processor);
    const result = fx.runner.run(taskRecord(0), never);
    await settle();
    expect(progressOf(fx.events())).toEqual([[0.1, '00.000Z']]);
    expect(fx.events().at(-1)?.progress).toEqual({ fraction: 0.1, message: 'start' });
    fx.clock.advance(500);
    release();
    await settle();
    expect(progressOf(fx.events())).toEqual([[0.1, '00.000Z']]);
    fx.clock.advance(500);
    await settle();
    // 0.2 was overtaken by 0.3 and 0.4 before its second was up: only the latest is written.
    expect(progressOf(fx.events())).toEqual([
      [0.1, '00.000Z'],
      [0.4, '01.000Z'],
    ]);
    fx.clock.advance(100);
    release();
    await expect(result).resolves.toBe('done');
    await settle();
    expect(progressOf(fx.events())).toEqual([
      [0.1, '00.000Z'],
      [0.4, '01.000Z'],
      [0.9, '01.100Z'],
    ]);
    expect(fx.statuses()).toEqual(['EXECUTING/1', 'PROGRESS/1', 'PROGRESS/1', 'PROGRESS/1', 'FINISHED/1']);
  });

  it('should clamp the fraction to 0..1, refuse one that is no number, and write nothing unchanged at the end', async () => {
    const thrown: unknown[] = [];
    const { processor, release } = scripted(async (ctx, wait) => {
      ctx.progress(7);
      for (const bad of [Number.NaN, '0.5' as unknown as number])
        try {
          ctx.progress(bad);
        } catch (err) {
          thrown.push(err);
        }
      await wait();
      ctx.progress(-3);
      await wait();
      ctx.progress(-1);
    });
    const fx = withLogs(processor);
    const result = fx.runner.run(taskRecord(0), never);
    await settle();
    fx.clock.advance(2000);
    release();
    await settle();
    fx.clock.advance(100);
    release();
    await expect(result).resolves.toBe('done');
    await settle();
    expect(progressOf(fx.events()).map(([f]) => f)).toEqual([1, 0]);
    expect(thrown.map((e) => (e as Error).message)).toEqual([
      'ctx.progress: the fraction must be a number from 0 to 1, got NaN',
      'ctx.progress: the fraction must be a number from 0 to 1, got 0.5',
    ]);
  });
});

describe('PROGRESS in the run history', () => {
  const by = { host: 'h', pid: 1, role: 'consumer' as const };
  const ev = (
    status: StatusEvent['status'],
    attempt: number,
    extra: Partial<StatusEvent> = {},
  ): StatusEvent => ({
    v: 1,
    taskId: 's@2026-11-25T08:00:00.000Z',
    scheduleId: 's',
    status,
    at: `2026-11-25T08:00:0${attempt}.000Z`,
    attempt,
    by,
    ...extra,
  });

  it('should show the latest progress on the run and never change its state', () => {
    const h = new RunHistory();
    h.fold(ev('SCHEDULED', 0));
    h.fold(ev('PROGRESS', 0, { progress: { fraction: 0.2 } }));
    expect(h.runs('s')[0]).toMatchObject({ state: 'QUEUED' });
    h.fold(ev('EXECUTING', 1));
    h.fold(ev('PROGRESS', 1, { progress: { fraction: 0.5, message: 'half' } }));
    expect(h.runs('s')[0]).toMatchObject({
      state: 'RUNNING',
      progress: { fraction: 0.5, message: 'half', at: '2026-11-25T08:00:01.000Z' },
    });
    h.fold(ev('FAILED', 1, { error: 'boom' }));
    h.fold(ev('PROGRESS', 1, { progress: { fraction: 0.6 } }));
    expect(h.runs('s')[0]).toMatchObject({ state: 'RETRYING', progress: { fraction: 0.6 } });
    h.fold(ev('EXECUTING', 2));
    expect(h.runs('s')[0]?.progress).toBeUndefined();
    h.fold(ev('PROGRESS', 2, { progress: { fraction: 1 } }));
    h.fold(ev('FINISHED', 2));
    expect(h.runs('s')[0]).toMatchObject({ state: 'FINISHED', attempts: 2, progress: { fraction: 1 } });
  });
});

describe('RunLogIndex', () => {
  const chunk = (taskId: string, lines: number, attempt = 1): InRecord => {
    const out = runLogRecord({
      v: 1,
      taskId,
      scheduleId: taskId.split('@')[0]!,
      attempt,
      lines: Array.from({ length: lines }, (_, i) => ({
        at: 'x',
        stream: 'info' as const,
        text: `${'z'.repeat(100)}${i}`,
      })),
    });
    return {
      topic: LOGS_TOPIC,
      partition: 0,
      offset: '0',
      key: Buffer.from(taskId),
      value: Buffer.from(out.value as string),
      headers: out.headers ?? {},
      timestamp: '0',
    };
  };
  const clock = new FakeClock(T0);

  it('should drop the runs written to least recently once they weigh more than its bound', async () => {
    const kafka = new MemoryKafka();
    const index = new RunLogIndex({
      kafka,
      logger: silentLogger,
      clock,
      historyMs: 60_000,
      maxBytes: 50_000,
    });
    index.onRecord(chunk('a@1', 100));
    index.onRecord(chunk('b@1', 100));
    index.onRecord(chunk('a@1', 10));
    index.onRecord(chunk('c@1', 100));
    expect(index.size.runs).toBe(2);
    expect((await index.answer('a', 'a@1')).items).toHaveLength(110);
    expect((await index.answer('b', 'b@1')).items).toEqual([]);
    expect((await index.answer('c', 'c@1')).items).toHaveLength(100);
    await expect(index.answer('a', 'c@1')).rejects.toThrow('c@1 is no run of a');
  });

  it('should answer an empty list saying so when taskmanager.logs does not exist, warning once', async () => {
    const lines: string[] = [];
    const kafka = new MemoryKafka();
    kafka.existingTopics = () => Promise.resolve(new Set<string>());
    const index = new RunLogIndex({ kafka, logger: recordingLogger(lines), clock, historyMs: 60_000 });
    await index.start();
    const a = await index.answer('a', 'a@1');
    expect(a).toMatchObject({ items: [], dropped: { lines: 0, bytes: 0 } });
    expect(a.note).toMatch(/^taskmanager\.logs does not exist/);
    clock.advance(30_000);
    await index.answer('a', 'a@1');
    expect(lines.filter((l) => l.includes('does not exist'))).toHaveLength(1);
  });
});
