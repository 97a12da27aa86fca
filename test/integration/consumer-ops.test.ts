import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, produce, uniqueName } from './helpers/kafka.js';
import { health, opsUrl, scrape, total } from './helpers/metrics.js';
import { killAll, runCli } from './helpers/processes.js';
import { fixtureConsumer, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';

describe('taskconsumer metrics, health and status', () => {
  let topic: string;
  let group: string;

  beforeEach(async () => {
    topic = uniqueName('tasks');
    group = uniqueName('consumers');
    await createTopics([topic]);
  });

  afterEach(async () => {
    await killAll();
    await deleteTopics([topic]);
  });

  it('should count what flows through it on /metrics, be ready, and show members and lag in status', async () => {
    const consumer = fixtureConsumer(
      topic,
      group,
      '--retry-base-ms',
      '10',
      '--max-attempts',
      '3',
      '--metrics-port',
      '0',
    );
    const base = await opsUrl(consumer);
    expect((await health(base, '/healthz')).status).toBe(200);
    await waitFor(async () => (await health(base, '/readyz')).status === 200, {
      timeoutMs: 30_000,
      what: 'ready',
    });

    const before = await scrape(base);
    expect(total(before, 'taskmanager_consumer_tasks_finished_total')).toBe(0);
    await publishTasks(topic, [
      ...Array.from({ length: 30 }, (_, i) => taskMessage(`ok-${i}`, 'NoopProcessor')),
      taskMessage('flaky', 'FlakyProcessor'),
      taskMessage('bad', 'BadInputProcessor'),
      taskMessage('who', 'NoSuchProcessor'),
    ]);
    await produce(topic, [{ key: 'junk', value: Buffer.from([0xff, 0x00, 0x13]) }]);

    const m = await waitFor(
      async () => {
        const s = await scrape(base);
        return total(s, 'taskmanager_consumer_tasks_finished_total') >= 31 &&
          total(s, 'taskmanager_consumer_tasks_dead_lettered_total') >= 3
          ? s
          : undefined;
      },
      { timeoutMs: 30_000, what: 'metrics counting 31 finished and 3 dead-lettered tasks' },
    );
    expect(total(m, 'taskmanager_consumer_tasks_finished_total', { processor: 'NoopProcessor' })).toBe(30);
    expect(total(m, 'taskmanager_consumer_tasks_finished_total', { processor: 'FlakyProcessor' })).toBe(1);
    // FlakyProcessor fails twice and succeeds on attempt 3.
    expect(total(m, 'taskmanager_consumer_tasks_failed_total', { processor: 'FlakyProcessor' })).toBe(2);
    expect(total(m, 'taskmanager_consumer_task_retries_total', { processor: 'FlakyProcessor' })).toBe(2);
    expect(total(m, 'taskmanager_consumer_tasks_dead_lettered_total', { reason: 'non-retriable' })).toBe(1);
    expect(total(m, 'taskmanager_consumer_tasks_dead_lettered_total', { reason: 'unknown-processor' })).toBe(
      1,
    );
    expect(total(m, 'taskmanager_consumer_tasks_dead_lettered_total', { reason: 'decode-error' })).toBe(1);
    expect(total(m, 'taskmanager_consumer_task_duration_seconds_count', { outcome: 'finished' })).toBe(31);
    expect(total(m, 'taskmanager_consumer_rebalances_total')).toBeGreaterThanOrEqual(1);
    expect(total(m, 'taskmanager_consumer_lag')).toBe(0);
    expect(total(m, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);

    const s = await runCli('taskconsumer', ['status', '-b', brokers(), '-g', group, '-t', topic]);
    expect(s.code, s.output).toBe(0);
    expect(s.stdout).toMatch(new RegExp(`consumer group ${group}: Stable, 1 member\\(s\\), lag 0`));
    expect(s.stdout).toContain(`taskconsumer-${consumer.pid}`);
    expect(s.stdout.split('\n').filter((l) => l.startsWith(`${topic} `))).toHaveLength(12);
  });
});
