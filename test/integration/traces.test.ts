import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApi } from './helpers/api.js';
import { brokers, TopicReader, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { EVENTS, scheduleFile } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import { exitWithin } from '../kit/processes.js';
import { OtlpReceiver } from '../kit/otlp-receiver.js';
import type { ReceivedSpan } from '../kit/otlp-receiver.js';
import type { ReadRecord } from '../kit/topic-reader.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';

/** The spans of one run, from the consumer's `process` span up its parents. */
interface RunTrace {
  taskId: string;
  process: ReceivedSpan;
  consume: ReceivedSpan;
  publish: ReceivedSpan;
  /** The scheduler's `fire`, or taskapi's `trigger`. */
  origin: ReceivedSpan;
}

describe('traces', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let receiver: OtlpReceiver;
  let events: TopicReader;
  beforeEach(async () => {
    receiver = await new OtlpReceiver().start();
    events = await new TopicReader([{ topic: EVENTS, fromEnd: true }]).start();
  });
  afterEach(async () => {
    await events.stop();
    await receiver.stop();
  });

  /** WARN and ERROR lines about traces (others may be about other tests' records of the shared topics). */
  const traceProblems = (cli: RunningCli): string[] =>
    cli.problems().filter((l) => /trace|span|otel|opentelemetry/i.test(l));
  /** A scheduler of `file`, in a group of its own, exporting to the receiver. */
  const tracedScheduler = (file: string) => {
    const flags = {
      '-b': brokers(),
      '-s': file,
      '--group': uniqueName('g'),
      '--otel-endpoint': receiver.url,
    };
    return startCli('taskscheduler', Object.entries(flags).flat());
  };
  /**
   * A consumer of the test's topic, in a group of its own, exporting to the receiver; EXECUTING as each attempt
   * starts (`--executing-after-ms 0`), so that every event a run can have is checked for the header.
   */
  const tracedConsumer = () => {
    const flags = {
      '-b': brokers(),
      '-t': fx.topic,
      '-g': uniqueName('c'),
      '--otel-endpoint': receiver.url,
      '--executing-after-ms': '0',
    };
    return startCli('taskconsumer', Object.entries(flags).flat());
  };
  const byId = (spanId: string): ReceivedSpan | undefined => receiver.spans.find((s) => s.spanId === spanId);
  /** A run of `scheduleId` whose four spans all reached the receiver, its origin span named `origin`. */
  const runTrace = (scheduleId: string, origin: string): RunTrace | undefined => {
    for (const process of receiver.named('process', 'taskconsumer')) {
      const taskId = String(process.attributes['taskmanager.task_id']);
      if (!taskId.startsWith(`${scheduleId}@`)) continue;
      const consume = byId(process.parentSpanId);
      const publish = consume && byId(consume.parentSpanId);
      const first = publish && byId(publish.parentSpanId);
      if (consume && publish && first?.name === origin)
        return { taskId, process, consume, publish, origin: first };
    }
    return undefined;
  };
  const taskRecordOf = (taskId: string): ReadRecord | undefined =>
    fx.reader.records.find((r) => r.topic === fx.topic && r.headers['task-id'] === taskId);
  const eventsOf = (taskId: string): ReadRecord[] =>
    events.records.filter((r) => r.headers['task-id'] === taskId);
  const statusOf = (r: ReadRecord): string => (JSON.parse(r.value ?? '{}') as StatusEvent).status;
  /** Waits for the run's FINISHED event; its task record and every event carry `traceparent`. */
  const expectHeaders = async (taskId: string, traceparent: string, statuses: string[]) => {
    await waitFor(() => eventsOf(taskId).some((r) => statusOf(r) === 'FINISHED') && taskRecordOf(taskId), {
      timeoutMs: 30_000,
      what: () => `${taskId} FINISHED (events: ${eventsOf(taskId).map(statusOf).join(' ')})`,
    });
    expect(taskRecordOf(taskId)?.headers.traceparent).toBe(traceparent);
    expect(eventsOf(taskId).map((r) => [statusOf(r), r.headers.traceparent])).toEqual(
      statuses.map((s) => [s, traceparent]),
    );
  };

  it('a trace for one run has the fire, publish, consume and process spans with one trace id at the test OTLP receiver', async () => {
    const id = uniqueName('traced');
    const file = await scheduleFile(fx.topic, [[id, '* * * * * *']]);
    const scheduler = tracedScheduler(file);
    const consumer = tracedConsumer();
    const run = await waitFor(() => runTrace(id, 'fire'), {
      timeoutMs: 60_000,
      what: () =>
        `one run's fire, publish, consume and process spans (got ${receiver.spans.map((s) => `${s.service}/${s.name}`).join(' ')})\n` +
        `${scheduler.output.slice(-1500)}\n${consumer.output.slice(-1500)}`,
    });
    const { origin: fire, publish, consume, process, taskId } = run;
    const traceId = fire.traceId;
    expect(traceId).toMatch(/^[\da-f]{32}$/);
    expect([publish, consume, process].map((s) => s.traceId)).toEqual([traceId, traceId, traceId]);
    // fire (root) → publish → consume → process.
    expect(fire.parentSpanId).toBe('');
    expect([fire.service, publish.service, consume.service, process.service]).toEqual([
      'taskscheduler',
      'taskscheduler',
      'taskconsumer',
      'taskconsumer',
    ]);
    expect(fire.attributes).toMatchObject({
      'taskmanager.task_id': taskId,
      'taskmanager.schedule_id': id,
      'taskmanager.processor': 'NoopProcessor',
    });
    expect(publish.attributes).toMatchObject({ 'messaging.destination.name': fx.topic });
    const record = taskRecordOf(taskId);
    expect(consume.attributes).toMatchObject({
      'taskmanager.task_id': taskId,
      'taskmanager.schedule_id': id,
      'taskmanager.processor': 'NoopProcessor',
      'messaging.destination.name': fx.topic,
      'messaging.destination.partition.id': String(record?.partition),
      'messaging.kafka.offset': Number(record?.offset),
      'taskmanager.outcome': 'FINISHED',
    });
    expect(process.attributes).toMatchObject({
      'taskmanager.task_id': taskId,
      'taskmanager.attempt': 1,
      'taskmanager.outcome': 'succeeded',
    });
    expect(fire.startMs).toBeLessThanOrEqual(publish.startMs);
    expect(consume.startMs).toBeLessThanOrEqual(process.startMs);
    expect(process.endMs).toBeLessThanOrEqual(consume.endMs);
    await expectHeaders(taskId, `00-${traceId}-${publish.spanId}-01`, ['SCHEDULED', 'EXECUTING', 'FINISHED']);
    expect(receiver.refused).toEqual([]);
    expect([...traceProblems(scheduler), ...traceProblems(consumer)]).toEqual([]);
  });

  it('should keep the traceparent on the events and the DLQ record of a consumer that does not trace', async () => {
    const id = uniqueName('dead');
    const file = await scheduleFile(fx.topic, [[id, '* * * * * *']], 'NoSuchProcessor');
    tracedScheduler(file);
    const dlq = await new TopicReader([`${fx.topic}.dlq`]).start();
    const consumer = startCli('taskconsumer', ['-b', brokers(), '-t', fx.topic, '-g', uniqueName('c')]);
    const dead = await waitFor(() => dlq.records[0], {
      timeoutMs: 60_000,
      what: () => `a DLQ record\n${consumer.output.slice(-1500)}`,
    }).finally(() => dlq.stop());
    const taskId = dead.headers['task-id']!;
    const traceparent = taskRecordOf(taskId)?.headers.traceparent;
    expect(traceparent).toMatch(/^00-[\da-f]{32}-[\da-f]{16}-01$/);
    expect(dead.headers).toMatchObject({ traceparent, 'dlq-reason': 'unknown-processor' });
    await waitFor(() => eventsOf(taskId).some((r) => statusOf(r) === 'FAILED'), {
      timeoutMs: 30_000,
      what: `the FAILED event of ${taskId}`,
    });
    expect(eventsOf(taskId).map((r) => [statusOf(r), r.headers.traceparent])).toEqual([
      ['SCHEDULED', traceparent],
      ['FAILED', traceparent],
    ]);
    // The header is the scheduler's publish span of that fire; the consumer (no --otel-endpoint) made none.
    const publish = await waitFor(() => receiver.spans.find((s) => traceparent?.includes(`-${s.spanId}-`)), {
      timeoutMs: 30_000,
      what: `the publish span of ${taskId}`,
    });
    expect(publish).toMatchObject({ name: 'publish', service: 'taskscheduler' });
    expect(traceparent).toBe(`00-${publish.traceId}-${publish.spanId}-01`);
    expect(receiver.spans.filter((s) => s.service !== 'taskscheduler')).toEqual([]);
  });

  it('should fire on with one warning line when the collector cannot be reached, and stop in time', async () => {
    const away = await new OtlpReceiver().start();
    const url = away.url;
    await away.stop();
    const id = uniqueName('unseen');
    const file = await scheduleFile(fx.topic, [[id, '* * * * * *']]);
    const scheduler = startCli('taskscheduler', [
      '-b',
      brokers(),
      '-s',
      file,
      '--group',
      uniqueName('g'),
      '--otel-endpoint',
      url,
    ]);
    const fired = () => fx.reader.values<{ scheduleId: string }>(fx.topic).filter((t) => t.scheduleId === id);
    await scheduler.waitForOutput(/cannot export traces to /, 30_000);
    const before = fired().length;
    await waitFor(() => fired().length >= before + 3, {
      timeoutMs: 15_000,
      what: 'three more fires after the warning',
    });
    expect(traceProblems(scheduler)).toEqual([
      expect.stringMatching(
        new RegExp(
          `WARN +cannot export traces to ${url}/v1/traces \\(.*ECONNREFUSED.*\\); spans are dropped until it answers`,
        ),
      ),
    ]);
    scheduler.signal('SIGTERM');
    const exit = await exitWithin(scheduler, 15_000);
    expect(exit).toMatchObject({ code: 0, forced: false });
  });

  it('should continue the trace of an API create and trigger that came with a traceparent', async () => {
    const api = await startApi(['--topic', fx.topic, '--otel-endpoint', receiver.url]);
    tracedConsumer();
    const traceId = [...Array(32)].map(() => Math.floor(Math.random() * 16).toString(16)).join('');
    const callerCreate = '1111111111111111';
    const callerTrigger = '2222222222222222';
    const id = uniqueName('api-traced');
    const created = await api.call(
      'POST',
      '/api/v1/tasks',
      {
        id,
        processor: 'NoopProcessor',
        schedule: { runAt: new Date(Date.now() + 3600_000).toISOString() },
      },
      { traceparent: `00-${traceId}-${callerCreate}-01` },
    );
    expect(created.status, created.text).toBe(201);
    const triggered = await api.call<{ taskId: string }>('POST', `/api/v1/tasks/${id}/trigger`, undefined, {
      traceparent: `00-${traceId}-${callerTrigger}-01`,
    });
    expect(triggered.status, triggered.text).toBe(202);
    const run = await waitFor(() => runTrace(id, 'trigger'), {
      timeoutMs: 60_000,
      what: () =>
        `the trigger's spans (got ${receiver.spans.map((s) => `${s.service}/${s.name}`).join(' ')})\n${api.cli.output.slice(-1500)}`,
    });
    expect(run.taskId).toBe(triggered.body.taskId);
    // trigger (child of the caller's span) → publish → consume → process, all in the caller's trace.
    expect([run.origin, run.publish, run.consume, run.process].map((s) => s.traceId)).toEqual(
      Array(4).fill(traceId),
    );
    expect(run.origin).toMatchObject({ service: 'taskapi', parentSpanId: callerTrigger });
    expect(run.origin.attributes).toMatchObject({
      'taskmanager.schedule_id': id,
      'taskmanager.task_id': run.taskId,
    });
    expect(run.publish.service).toBe('taskapi');
    const create = await waitFor(
      () => receiver.named('create', 'taskapi').find((s) => s.traceId === traceId),
      {
        timeoutMs: 30_000,
        what: 'the create span',
      },
    );
    expect(create.parentSpanId).toBe(callerCreate);
    expect(create.attributes).toMatchObject({ 'taskmanager.schedule_id': id });
    await expectHeaders(run.taskId, `00-${traceId}-${run.publish.spanId}-01`, [
      'SCHEDULED',
      'EXECUTING',
      'FINISHED',
    ]);
  });
});
