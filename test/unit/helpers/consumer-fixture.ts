import { Semaphore } from '../../../src/consumer/semaphore.js';
import { TaskRunner } from '../../../src/consumer/task-runner.js';
import type { TaskOutcome, TaskRunnerOptions } from '../../../src/consumer/task-runner.js';
import { ProcessorRegistry } from '../../../src/processors/registry.js';
import type { Processor } from '../../../src/processors/types.js';
import { BatchingSender } from '../../../src/shared/kafka/index.js';
import type { InRecord, OutRecord, PartitionBatch, KafkaProducer } from '../../../src/shared/kafka/index.js';
import { silentLogger } from '../../../src/shared/logger.js';
import { encodeJson } from '../../../src/shared/messages.js';
import { EVENTS_TOPIC } from '../../../src/shared/codecs/task-event.js';
import type { StatusEvent } from '../../../src/shared/codecs/task-event.js';
import { FakeClock } from './fake-clock.js';
import { MemoryKafka } from './memory-kafka.js';

export const T0 = Date.parse('2026-11-25T08:00:00.000Z');
export const TOPIC = 'tasks';

/** A task record of `TOPIC` partition 0 for processor `processor`, keyed by its schedule Id. */
export function taskRecord(
  offset: number,
  o: { key?: string; processor?: string; overlap?: 'skip' | 'replace' | 'allow' } = {},
): InRecord {
  const scheduleId = o.key ?? `s${offset}`;
  const at = new Date(T0 + offset * 1000).toISOString();
  return {
    topic: TOPIC,
    partition: 0,
    offset: String(offset),
    key: Buffer.from(scheduleId),
    value: encodeJson({
      v: 1,
      taskId: `${scheduleId}@${at}`,
      scheduleId,
      processor: o.processor ?? 'P',
      scheduledFor: at,
      firedAt: at,
      scheduler: { group: 'g', host: 'h', pid: 1 },
    }),
    headers: { 'task-id': `${scheduleId}@${at}`, ...(o.overlap ? { overlap: o.overlap } : {}) },
    timestamp: '0',
  };
}

/**
 * A TaskRunner publishing through MemoryKafka, on a FakeClock, writing EXECUTING as an attempt starts unless
 * `executingAfterMs` says otherwise. `failSends` makes that many of the next produce
 * requests fail (a broker away). Events and DLQ records are read back from the fake topics.
 */
export function consumerFixture(processors: Processor[], options: Partial<TaskRunnerOptions> = {}) {
  const clock = new FakeClock(T0 + 60_000);
  const kafka = new MemoryKafka(clock);
  const memory = kafka.producer();
  let failSends = 0;
  const producer = {
    send: (records: readonly OutRecord[]): Promise<void> => {
      if (failSends > 0) {
        failSends--;
        return Promise.reject(new Error('Connection error: connect ECONNREFUSED 127.0.0.1:9092'));
      }
      return memory.send(records);
    },
  } as unknown as KafkaProducer;
  const outcomes: TaskOutcome[] = [];
  const runner = new TaskRunner({
    registry: new ProcessorRegistry(processors),
    sender: new BatchingSender(producer),
    clock,
    logger: silentLogger,
    origin: { host: 'test', pid: 1 },
    maxAttempts: 3,
    taskTimeoutMs: 0,
    backoff: { baseMs: 1000, maxMs: 1000 },
    onOutcome: (o) => outcomes.push(o),
    // Every attempt's EXECUTING as it starts: what the tests of whole event sequences read (late-starts.test.ts
    // and task-runner-executing.test.ts test the threshold).
    executingAfterMs: 0,
    ...options,
  });
  const events = (): StatusEvent[] =>
    kafka.records(EVENTS_TOPIC, 0).map((r) => JSON.parse(r.value?.toString('utf8') ?? '') as StatusEvent);
  return {
    clock,
    kafka,
    runner,
    outcomes,
    events,
    /** `status/attempt` of each event of a task, in the order written. */
    statuses: (taskId?: string): string[] =>
      events()
        .filter((e) => taskId === undefined || e.taskId === taskId)
        .map((e) => `${e.status}/${e.attempt}`),
    dlq: (): InRecord[] => kafka.records(`${TOPIC}.dlq`, 0),
    failSends: (n: number): void => {
      failSends = n;
    },
    slots: (n: number): Semaphore => new Semaphore(n),
  };
}

/** A fetched batch of `TOPIC`/0 for BatchWorker, recording what the worker resolved and when it heartbeat. */
export function memoryBatch(records: InRecord[]) {
  const resolved: string[] = [];
  /** The positions committed (next offset to read), in order. */
  const committed: string[] = [];
  const state = {
    running: true,
    heartbeats: 0,
    /** What the next heartbeat throws (a rebalance), once. */
    heartbeatError: undefined as unknown,
  };
  const batch: PartitionBatch = {
    topic: TOPIC,
    partition: 0,
    highWatermark: String(Number(records[records.length - 1]?.offset ?? -1) + 1),
    records,
    lastOffset: () => records[records.length - 1]?.offset ?? '-1',
    resolveOffset: (o) => void resolved.push(o),
    commitIfNecessary: () => Promise.resolve(),
    commitOffsets: (offsets) => {
      for (const o of offsets) committed.push(o.offset);
      return Promise.resolve();
    },
    heartbeat: () => {
      state.heartbeats++;
      const err = state.heartbeatError;
      state.heartbeatError = undefined;
      return err === undefined ? Promise.resolve() : Promise.reject(err);
    },
    isRunning: () => state.running,
    isStale: () => false,
  };
  return { batch, resolved, committed, state };
}
