import { describe, expect, it } from 'vitest';
import { TaskConsumer } from '../../src/consumer/task-consumer.js';
import { ProcessorRegistry } from '../../src/processors/registry.js';
import { silentLogger } from '../../src/shared/logger.js';
import { EVENTS_TOPIC } from '../../src/shared/codecs/task-event.js';
import { T0, taskRecord, TOPIC } from './helpers/consumer-fixture.js';
import { FakeClock } from './helpers/fake-clock.js';
import type { MemoryGroupMember } from './helpers/memory-group-member.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { settle } from './helpers/settle.js';

describe('TaskConsumer.stop', () => {
  describe('when a running task outlives the drain deadline', () => {
    it('should abort it at the deadline on its clock, and leave it for re-delivery', async () => {
      const clock = new FakeClock(T0);
      const kafka = new MemoryKafka(clock);
      const rec = taskRecord(0);
      kafka.write([{ topic: TOPIC, key: rec.key?.toString() ?? null, value: rec.value }]);
      const signals: AbortSignal[] = [];
      const consumer = new TaskConsumer({
        kafka: kafka.client(),
        topics: [TOPIC],
        groupId: 'workers',
        registry: new ProcessorRegistry([
          {
            name: 'P',
            process: (_t, ctx) =>
              new Promise((_resolve, reject) => {
                signals.push(ctx.signal);
                ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason as Error));
              }),
          },
        ]),
        clock,
        logger: silentLogger,
        concurrency: 1,
        maxAttempts: 1,
        // Longer than the stop deadline: the drain, not the revoke of the partition, ends the task.
        drainTimeoutMs: 60_000,
        taskTimeoutMs: 0,
      });
      await consumer.start();
      const member = kafka.members[0] as MemoryGroupMember;
      member.join({ [TOPIC]: [0] });
      await settle();
      expect(signals).toHaveLength(1);
      let stopped = false;
      const stopping = consumer.stop({ deadlineMs: 5000 }).then(() => (stopped = true));
      for (let t = 0; t < 4999; t += 500) {
        clock.advance(Math.min(500, 4999 - t));
        await settle();
      }
      expect(signals[0]?.aborted).toBe(false);
      expect(stopped).toBe(false);
      clock.advance(1);
      await settle();
      await stopping;
      expect(signals[0]?.aborted).toBe(true);
      const statuses = kafka
        .records(EVENTS_TOPIC, 0)
        .map((r) => (JSON.parse(String(r.value)) as { status: string }).status);
      expect(statuses).toEqual(['EXECUTING', 'FAILED']);
      expect(kafka.records(`${TOPIC}.dlq`, 0)).toEqual([]);
    });
  });
});
