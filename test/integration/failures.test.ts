import { resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, produce, TopicReader, uniqueName } from './helpers/kafka.js';
import type { ReadRecord } from './helpers/kafka.js';
import { killAll, ROOT, startCli } from './helpers/processes.js';
import { EVENTS, eventsOf, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';

const FIXTURES = resolve(ROOT, 'test/fixtures/test-processors.js');

describe('taskconsumer with bad input and failing processors', () => {
  let topic: string;
  let prefix: string;
  let reader: TopicReader;

  beforeEach(async () => {
    topic = uniqueName('tasks');
    prefix = `${uniqueName('f')}-`;
    await createTopics([topic]);
    reader = await new TopicReader([topic, `${topic}.dlq`, { topic: EVENTS, fromEnd: true }]).start();
    // EXECUTING as each attempt starts (`--executing-after-ms 0`): this test counts attempts by it.
    startCli('taskconsumer', [
      '--executing-after-ms',
      '0',
      '-b',
      brokers(),
      '-t',
      topic,
      '-g',
      uniqueName('group'),
      '--processors',
      FIXTURES,
      '--max-attempts',
      '3',
      '--retry-base-ms',
      '50',
    ]);
  });

  afterEach(async () => {
    await killAll();
    await reader.stop();
    await deleteTopics([topic]);
  });

  const dlq = (): ReadRecord[] => reader.records.filter((r) => r.topic === `${topic}.dlq`);

  describe('when a garbage message and an unknown processor arrive', () => {
    it('should dead-letter both with their reason, and keep processing', async () => {
      await produce(topic, [{ key: 'junk', value: Buffer.from([0xde, 0xad, 0xbe, 0xef]) }]);
      const unknown = taskMessage(`${prefix}u`, 'com.acme.NoSuchProcessor');
      const good = taskMessage(`${prefix}g`, 'NoopProcessor');
      await publishTasks(topic, [unknown, good]);
      await waitFor(() => dlq().length === 2, { timeoutMs: 30_000, what: '2 DLQ records' });
      // The final event of the unknown one too: written with its DLQ record, it may be read after it.
      await waitFor(
        () =>
          eventsOf(reader, good.taskId).some((e) => e.status === 'FINISHED') &&
          eventsOf(reader, unknown.taskId).some((e) => e.status === 'FAILED' && e.final),
        { timeoutMs: 30_000, what: 'the good task, and the final event of the unknown one' },
      );
      const garbage = dlq().find((r) => r.key === 'junk');
      expect(garbage?.headers['dlq-reason']).toBe('decode-error');
      expect(garbage?.headers['dlq-original-topic']).toBe(topic);
      expect(garbage?.headers['dlq-original-offset']).toMatch(/^\d+$/);
      const u = dlq().find((r) => r.key === unknown.scheduleId);
      expect(u?.headers['dlq-reason']).toBe('unknown-processor');
      expect(u?.headers['dlq-error']).toContain('com.acme.NoSuchProcessor');
      expect(JSON.parse(u?.value ?? '{}')).toEqual(unknown);
      const final = eventsOf(reader, unknown.taskId).filter((e) => e.status === 'FAILED');
      expect(final).toMatchObject([{ final: true, dlqReason: 'unknown-processor' }]);
    });
  });

  describe('when processors fail', () => {
    it('should retry a flaky one to success, dead-letter exhausted and non-retriable ones', async () => {
      const flaky = taskMessage(`${prefix}flaky`, 'FlakyProcessor');
      const always = taskMessage(`${prefix}always`, 'AlwaysFailsProcessor');
      const bad = taskMessage(`${prefix}bad`, 'BadInputProcessor');
      const str = taskMessage(`${prefix}str`, 'ThrowsStringProcessor');
      await publishTasks(topic, [flaky, always, bad, str]);
      await waitFor(() => eventsOf(reader, flaky.taskId).some((e) => e.status === 'FINISHED'), {
        timeoutMs: 30_000,
        what: 'flaky FINISHED',
      });
      await waitFor(() => dlq().length === 3, { timeoutMs: 30_000, what: '3 DLQ records' });

      expect(eventsOf(reader, flaky.taskId).find((e) => e.status === 'FINISHED')?.attempt).toBe(3);
      const reasons = Object.fromEntries(
        dlq().map((r) => [r.key, [r.headers['dlq-reason'], r.headers['dlq-attempts']]]),
      );
      expect(reasons).toEqual({
        [always.scheduleId]: ['attempts-exhausted', '3'],
        [bad.scheduleId]: ['non-retriable', '1'],
        [str.scheduleId]: ['attempts-exhausted', '3'],
      });
      expect(dlq().find((r) => r.key === str.scheduleId)?.headers['dlq-error']).toContain('a plain string');
      // The DLQ record and the final FAILED event are written together, but the reader may see the DLQ partition
      // first: wait for the final events before counting what came before them.
      await waitFor(
        () =>
          [always, bad].every((t) =>
            eventsOf(reader, t.taskId).some((e) => e.status === 'FAILED' && e.final),
          ),
        { timeoutMs: 30_000, what: 'the final FAILED events' },
      );
      const alwaysEvents = eventsOf(reader, always.taskId);
      expect(alwaysEvents.filter((e) => e.status === 'EXECUTING')).toHaveLength(3);
      expect(alwaysEvents.filter((e) => e.status === 'FAILED' && e.final)).toHaveLength(1);
      expect(eventsOf(reader, bad.taskId).filter((e) => e.status === 'EXECUTING')).toHaveLength(1);
    });
  });
});
