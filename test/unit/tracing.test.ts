import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import { silentLogger } from '../../src/shared/logger.js';
import {
  continuedTraceparent,
  createTracing,
  formatTraceparent,
  NO_TRACING,
  parseTraceparent,
  TRACEPARENT_HEADER,
  tracesUrlOf,
} from '../../src/shared/tracing.js';
import type { TraceSpan, Tracing } from '../../src/shared/tracing.js';
import { OtlpReceiver } from '../kit/otlp-receiver.js';
import { waitFor } from '../kit/wait.js';
import { apiApp } from './helpers/api-app.js';
import { consumerFixture, taskRecord } from './helpers/consumer-fixture.js';
import { settle } from './helpers/settle.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

describe('traceparent', () => {
  it('should parse a W3C traceparent and format it back', () => {
    const value = `00-${TRACE}-${SPAN}-01`;
    expect(parseTraceparent(value)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
    expect(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 1 })).toBe(value);
    expect(formatTraceparent({ traceId: TRACE, spanId: SPAN, flags: 0 })).toBe(`00-${TRACE}-${SPAN}-00`);
    expect(parseTraceparent(` ${value} `)).toEqual({ traceId: TRACE, spanId: SPAN, flags: 1 });
  });

  it.each([
    ['absent', undefined],
    ['empty', ''],
    ['upper-case hex', `00-${TRACE.toUpperCase()}-${SPAN}-01`],
    ['an all-zero trace id', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['an all-zero parent id', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${TRACE}-${SPAN}-01`],
    ['version 00 with more fields', `00-${TRACE}-${SPAN}-01-extra`],
    ['a short trace id', `00-${TRACE.slice(1)}-${SPAN}-01`],
    ['a missing flags field', `00-${TRACE}-${SPAN}`],
  ])('should refuse %s (a new trace starts)', (_what, value) => {
    expect(parseTraceparent(value)).toBeUndefined();
    expect(continuedTraceparent(value)).toBeUndefined();
  });

  it('should read a later version as version 00, and pass it on as 00', () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01-more`)).toEqual({
      traceId: TRACE,
      spanId: SPAN,
      flags: 1,
    });
    expect(continuedTraceparent(`01-${TRACE}-${SPAN}-01-more`)).toBe(`00-${TRACE}-${SPAN}-01`);
  });
});

describe('--otel-endpoint', () => {
  it('should post to <endpoint>/v1/traces unless the URL names that path', () => {
    expect(tracesUrlOf('http://collector:4318')).toBe('http://collector:4318/v1/traces');
    expect(tracesUrlOf('http://collector:4318/')).toBe('http://collector:4318/v1/traces');
    expect(tracesUrlOf('https://c.example/otlp')).toBe('https://c.example/otlp/v1/traces');
    expect(tracesUrlOf('http://collector:4318/v1/traces')).toBe('http://collector:4318/v1/traces');
  });

  it('should refuse what is no http(s) URL with a usage error', () => {
    expect(() => tracesUrlOf('collector:4318')).toThrow(/--otel-endpoint: expected an http\(s\) URL/);
    expect(() => tracesUrlOf('not a url')).toThrow(/--otel-endpoint: not a URL/);
  });
});

const entry: ScheduleEntry = {
  id: 'report',
  spec: { kind: 'cron', cron: '* * * * * *' },
  topic: 'reports',
  timeZone: 'UTC',
  enabled: true,
  misfire: 'fire-once',
  misfireWindowSeconds: 3600,
  processor: 'ReportProcessor',
  index: 0,
};
const origin = { host: 'h1', pid: 42, group: 'g' };
const at = Date.parse('2026-03-01T05:00:00Z');

describe('tracing in the scheduler, the consumer and the exporter', () => {
  let receiver: OtlpReceiver;
  const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  beforeEach(async () => {
    receiver = await new OtlpReceiver().start();
  });
  afterEach(async () => {
    await receiver.stop();
    if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
  });

  /** Fires encoded as the scheduler's owner does it, the spans ended as after a committed transaction. */
  function encode(tracing: Tracing) {
    const spans: TraceSpan[] = [];
    const records = new FireEncoder('g', 0, origin, tracing).records(
      [
        { entry, scheduledFor: at },
        { entry, scheduledFor: at + 1000 },
      ],
      at + 5,
      tracing.enabled ? spans : undefined,
    );
    for (const s of spans) s.end();
    return { records, spans };
  }

  it('should add no header and export nothing without an endpoint (even with the OTel env set)', async () => {
    // The SDK reads OTEL_EXPORTER_OTLP_ENDPOINT itself: without --otel-endpoint it must not be started at all.
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    const tracing = createTracing({ endpoint: undefined, service: 'taskscheduler', logger: silentLogger });
    expect(tracing).toBe(NO_TRACING);
    const { records, spans } = encode(tracing);
    expect(spans).toEqual([]);
    expect(records.filter((r) => r.headers?.[TRACEPARENT_HEADER] !== undefined)).toEqual([]);
    // The same fires encoded with no tracing at all are the same records.
    expect(records).toEqual(
      new FireEncoder('g', 0, origin).records(
        [
          { entry, scheduledFor: at },
          { entry, scheduledFor: at + 1000 },
        ],
        at + 5,
      ),
    );
    await tracing.shutdown();
    expect(receiver.requests).toBe(0);
  });

  it('should give each fire its fire and publish spans, and its records the publish span as traceparent', async () => {
    const tracing = createTracing({ endpoint: receiver.url, service: 'taskscheduler', logger: silentLogger });
    const { records } = encode(tracing);
    await tracing.shutdown();
    await waitFor(() => receiver.spans.length === 4, { timeoutMs: 10_000, what: 'the 4 spans exported' });
    expect(receiver.refused).toEqual([]);
    const tasks = records.filter((r) => r.topic === 'reports');
    expect(tasks).toHaveLength(2);
    for (const task of tasks) {
      const tp = parseTraceparent(task.headers?.[TRACEPARENT_HEADER]);
      expect(tp, 'task record traceparent').toBeDefined();
      const publish = receiver.spans.find((s) => s.spanId === tp!.spanId);
      expect(publish).toMatchObject({ name: 'publish', traceId: tp!.traceId, service: 'taskscheduler' });
      const fire = receiver.spans.find((s) => s.spanId === publish!.parentSpanId);
      expect(fire).toMatchObject({ name: 'fire', traceId: tp!.traceId, parentSpanId: '' });
      expect(fire!.attributes).toMatchObject({
        'taskmanager.task_id': task.headers?.['task-id'],
        'taskmanager.schedule_id': 'report',
        'taskmanager.processor': 'ReportProcessor',
      });
      // Its SCHEDULED event carries the same context.
      const event = records.find(
        (r) => r.topic === 'taskmanager.events' && r.key === task.headers?.['task-id'],
      );
      expect(event?.headers?.[TRACEPARENT_HEADER]).toBe(task.headers?.[TRACEPARENT_HEADER]);
    }
    // One trace per fire.
    expect(new Set(receiver.spans.map((s) => s.traceId)).size).toBe(2);
  });

  it('should keep the record traceparent on every status event and the DLQ record, tracing off', async () => {
    const fx = consumerFixture([
      {
        name: 'P',
        process: () => Promise.reject(new Error('boom')),
      },
    ]);
    const rec = taskRecord(0);
    rec.headers[TRACEPARENT_HEADER] = `00-${TRACE}-${SPAN}-01`;
    const result = fx.runner.run(rec, new AbortController().signal);
    for (let i = 0; i < 3; i++) {
      await settle();
      fx.clock.advance(1000);
    }
    await expect(result).resolves.toBe('done');
    const events = fx.kafka.records('taskmanager.events', 0);
    expect(events.map((e) => e.headers[TRACEPARENT_HEADER])).toEqual(
      events.map(() => `00-${TRACE}-${SPAN}-01`),
    );
    expect(events.length).toBeGreaterThanOrEqual(6);
    expect(fx.dlq().map((r) => r.headers[TRACEPARENT_HEADER])).toEqual([`00-${TRACE}-${SPAN}-01`]);
  });

  it('should add no traceparent to the events of a record without one', async () => {
    const fx = consumerFixture([{ name: 'P', process: () => Promise.resolve() }]);
    await expect(fx.runner.run(taskRecord(0), new AbortController().signal)).resolves.toBe('done');
    const events = fx.kafka.records('taskmanager.events', 0);
    expect(events.length).toBe(2);
    expect(events.filter((e) => TRACEPARENT_HEADER in e.headers)).toEqual([]);
  });

  it('should trace a run as consume with one process span per attempt, children of the record context', async () => {
    const tracing = createTracing({ endpoint: receiver.url, service: 'taskconsumer', logger: silentLogger });
    let calls = 0;
    const fx = consumerFixture(
      [
        {
          name: 'P',
          process: () => (++calls === 1 ? Promise.reject(new Error('first fails')) : Promise.resolve()),
        },
      ],
      { tracing },
    );
    const rec = taskRecord(7);
    rec.headers[TRACEPARENT_HEADER] = `00-${TRACE}-${SPAN}-01`;
    const result = fx.runner.run(rec, new AbortController().signal);
    await settle();
    fx.clock.advance(1000);
    await expect(result).resolves.toBe('done');
    expect(fx.outcomes.map((o) => o.status)).toEqual(['FINISHED']);
    await tracing.shutdown();
    await waitFor(() => receiver.spans.length === 3, { timeoutMs: 10_000, what: 'the 3 spans exported' });
    const [consume] = receiver.named('consume');
    expect(consume).toMatchObject({ traceId: TRACE, parentSpanId: SPAN, service: 'taskconsumer' });
    expect(consume!.attributes).toMatchObject({
      'messaging.destination.name': 'tasks',
      'messaging.destination.partition.id': '0',
      'messaging.kafka.offset': 7,
      'taskmanager.task_id': rec.headers['task-id'],
      'taskmanager.processor': 'P',
      'taskmanager.outcome': 'FINISHED',
      'taskmanager.attempts': 2,
    });
    const processes = receiver.named('process').sort((a, b) => a.startMs - b.startMs);
    expect(processes.map((p) => [p.traceId, p.parentSpanId, p.attributes['taskmanager.attempt']])).toEqual([
      [TRACE, consume!.spanId, 1],
      [TRACE, consume!.spanId, 2],
    ]);
    expect(processes.map((p) => [p.attributes['taskmanager.outcome'], p.statusCode])).toEqual([
      ['failed', 2],
      ['succeeded', 0],
    ]);
    expect(processes[0]!.statusMessage).toBe('first fails');
  });

  it('should say once in a warning that the collector cannot be reached, and go on', async () => {
    const url = receiver.url;
    await receiver.stop();
    const warnings: string[] = [];
    const logger = { ...silentLogger, warn: (m: string) => void warnings.push(m) };
    const tracing = createTracing({
      endpoint: url,
      service: 'taskapi',
      logger,
      exportDelayMs: 10,
      exportTimeoutMs: 500,
    });
    tracing.startSpan('create').end();
    await waitFor(() => warnings.length > 0, { timeoutMs: 15_000, what: 'the warning' });
    tracing.startSpan('create').end();
    await tracing.shutdown();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^cannot export traces to http:\/\/127\.0\.0\.1:\d+\/v1\/traces \(.+\); spans are dropped until it answers$/,
    );
  });
});

describe('taskapi without tracing', () => {
  it("should put a trigger request's traceparent on the task record and its SCHEDULED event as it came", async () => {
    const api = await apiApp();
    try {
      await api.users.addUser('op', 'a-long-enough-password', 'operator', 'test');
      const token = (await api.login('op', 'a-long-enough-password')).body.accessToken as string;
      const call = (url: string, headers: Record<string, string> = {}, payload?: object) =>
        api.app.inject({
          method: 'POST',
          url,
          headers: { authorization: `Bearer ${token}`, ...headers },
          ...(payload ? { payload } : {}),
        });
      const created = await call(
        '/api/v1/tasks',
        { traceparent: `00-${TRACE}-${SPAN}-01` },
        {
          id: 'traced',
          processor: 'NoopProcessor',
          schedule: { cron: '0 0 1 1 *' },
        },
      );
      expect(created.statusCode, created.body).toBe(201);
      const fired = async (headers: Record<string, string>) => {
        // Only what this trigger wrote (two triggers in one millisecond share a taskId).
        const seen = new Map([...api.kafka.topics].map(([topic, log]) => [topic, log.length]));
        const r = await call('/api/v1/tasks/traced/trigger', headers);
        expect(r.statusCode, r.body).toBe(202);
        const { taskId } = r.json<{ taskId: string }>();
        const records = [...api.kafka.topics]
          .flatMap(([topic, log]) => log.slice(seen.get(topic) ?? 0))
          .filter((rec) => rec.headers['task-id'] === taskId);
        return records
          .map((rec) => [rec.topic, rec.headers[TRACEPARENT_HEADER]])
          .sort(([a], [b]) => (a! < b! ? -1 : 1));
      };
      expect(await fired({ traceparent: `00-${TRACE}-${SPAN}-01` })).toEqual([
        ['taskTopic', `00-${TRACE}-${SPAN}-01`],
        ['taskmanager.events', `00-${TRACE}-${SPAN}-01`],
      ]);
      // A later version is passed on as 00; a malformed one, or none, gives no header.
      expect(await fired({ traceparent: `01-${TRACE}-${SPAN}-01-x` })).toEqual([
        ['taskTopic', `00-${TRACE}-${SPAN}-01`],
        ['taskmanager.events', `00-${TRACE}-${SPAN}-01`],
      ]);
      expect(await fired({ traceparent: 'not-a-traceparent' })).toEqual([
        ['taskTopic', undefined],
        ['taskmanager.events', undefined],
      ]);
      expect(await fired({})).toEqual([
        ['taskTopic', undefined],
        ['taskmanager.events', undefined],
      ]);
    } finally {
      await api.close();
    }
  });
});
