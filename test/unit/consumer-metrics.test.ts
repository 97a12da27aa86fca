import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { BatchWorker } from '../../src/consumer/batch-worker.js';
import { ConsumerMetrics } from '../../src/consumer/metrics.js';
import { Semaphore } from '../../src/consumer/semaphore.js';
import { TaskRunner } from '../../src/consumer/task-runner.js';
import { ProcessorRegistry } from '../../src/processors/registry.js';
import { BatchingSender } from '../../src/shared/kafka/index.js';
import type { InRecord, OutRecord, PartitionBatch } from '../../src/shared/kafka/index.js';
import type { KafkaProducer } from '../../src/shared/kafka/client.js';
import { silentLogger } from '../../src/shared/logger.js';
import { encodeTaskMessage, taskMessageOf } from '../../src/shared/codecs/task-message.js';
import { FakeClock } from './helpers/fake-clock.js';

const TOPIC = 'tasks';

/** A producer that hands each request to `send` (the broker's answer). */
function producer(send: (records: readonly OutRecord[]) => Promise<void>): KafkaProducer {
  return { send } as unknown as KafkaProducer;
}

function setup(send: (records: readonly OutRecord[]) => Promise<void>) {
  const registry = new Registry();
  const metrics = new ConsumerMetrics(registry, { inFlight: () => 0, ready: () => true });
  const clock = new FakeClock(Date.parse('2026-11-25T08:00:00Z'));
  const runner = new TaskRunner({
    registry: new ProcessorRegistry([{ name: 'Noop', process: async () => undefined }]),
    sender: new BatchingSender(producer(send)),
    clock,
    logger: silentLogger,
    origin: { host: 'test', pid: 1 },
    maxAttempts: 3,
    taskTimeoutMs: 0,
    metrics,
  });
  const value = async (name: string): Promise<number> =>
    ((await registry.getSingleMetric(name)?.get())?.values ?? []).reduce((n, v) => n + v.value, 0);
  return { metrics, clock, runner, value };
}

function record(offset: number, value: Buffer): InRecord {
  return {
    topic: TOPIC,
    partition: 0,
    offset: String(offset),
    key: null,
    value,
    headers: {},
    timestamp: '0',
  };
}

function task(offset: number): InRecord {
  const ms = Date.parse('2026-11-25T08:00:00Z') + offset * 1000;
  return record(
    offset,
    Buffer.from(
      encodeTaskMessage(
        taskMessageOf({ scheduleId: 's', processor: 'Noop' }, ms, ms, { group: 'g', host: 'h', pid: 1 }),
      ),
    ),
  );
}

describe('consumer metrics', () => {
  describe('when a record cannot be dead-lettered before the drain ends', () => {
    it('should not count it as dead-lettered (it is read again, and counted when its DLQ write is acked)', async () => {
      const drain = new AbortController();
      const { runner, value } = setup(async () => {
        drain.abort();
        throw new Error('broker down');
      });
      const result = await runner.run(record(7, Buffer.from([0xff, 0x00])), drain.signal);
      expect(result).toBe('interrupted');
      expect(await value('taskmanager_consumer_tasks_dead_lettered_total')).toBe(0);
    });
  });

  describe('when a record is dead-lettered', () => {
    it('should count it once Kafka acked its DLQ record', async () => {
      const { runner, value } = setup(async () => undefined);
      expect(await runner.run(record(7, Buffer.from([0xff, 0x00])), new AbortController().signal)).toBe(
        'done',
      );
      expect(await value('taskmanager_consumer_tasks_dead_lettered_total')).toBe(1);
    });
  });

  describe('when a batch from a transactional producer ends with its commit marker', () => {
    it('should report lag 0 once every record is done, the marker being nothing to process', async () => {
      const { metrics, clock, runner, value } = setup(async () => undefined);
      const worker = new BatchWorker({
        runner,
        slots: new Semaphore(4),
        clock,
        logger: silentLogger,
        revokeTimeoutMs: 1000,
        drain: new AbortController().signal,
        metrics,
      });
      const resolved: string[] = [];
      // Offsets 10..12 are records, 13 is the transaction's commit marker: the high watermark is 14.
      const batch: PartitionBatch = {
        topic: TOPIC,
        partition: 0,
        highWatermark: '14',
        records: [task(10), task(11), task(12)],
        lastOffset: () => '13',
        resolveOffset: (o) => void resolved.push(o),
        commitIfNecessary: async () => undefined,
        commitOffsets: async () => undefined,
        heartbeat: async () => undefined,
        isRunning: () => true,
        isStale: () => false,
      };
      await worker.handle(batch);
      await worker.stop();
      expect(resolved.at(-1)).toBe('13');
      expect(await value('taskmanager_consumer_tasks_finished_total')).toBe(3);
      expect(await value('taskmanager_consumer_lag')).toBe(0);
    });
  });
});
