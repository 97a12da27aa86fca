import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, produce, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { opsUrl, scrape, total } from './helpers/metrics.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { definitionRecord } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition } from '../../src/shared/tasks/definition.js';
import { OP_HEADER } from '../../src/shared/tasks/task-log.js';

interface StatusJson {
  instances: Array<{ pid: number; partitions: number[]; apiDefinitions?: number }>;
}

describe('a scheduler group of two instances firing tasks from taskmanager.tasks', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let group: string;
  let prefix: string;

  beforeEach(() => {
    group = uniqueName('api-shard');
    prefix = `${uniqueName('s')}-`;
  });

  const oneShots = (from: number, count: number, runAtMs: number): TaskDefinition[] => {
    const now = new Date().toISOString();
    return Array.from({ length: count }, (_, i) => ({
      v: 1,
      id: `${prefix}${from + i}`,
      name: `n${from + i}`,
      processor: 'NoopProcessor',
      topic: fx.topic,
      schedule: { runAt: new Date(runAtMs).toISOString() },
      timeZone: 'UTC',
      misfire: 'fire-once',
      enabled: true,
      group,
      createdAt: now,
      updatedAt: now,
    }));
  };
  const write = async (defs: TaskDefinition[]): Promise<void> => {
    // As taskapi writes them (tm-group header), but for every third one, as written before that header existed.
    const records = defs.map((d, i) => {
      const r = definitionRecord(d, { [OP_HEADER]: 'create' });
      return { key: r.key, value: r.value, headers: i % 3 === 0 ? { [OP_HEADER]: 'create' } : r.headers };
    });
    await produce('taskmanager.tasks', records);
  };
  const scheduler = (): RunningCli =>
    startCli('taskscheduler', ['-b', brokers(), '-s', 'none', '--group', group, '--metrics-port', '0']);
  const held = async (s: RunningCli): Promise<number> =>
    total(await scrape(await opsUrl(s)), 'taskmanager_scheduler_api_definitions', { group });
  const status = async (): Promise<StatusJson> => {
    const r = await runCli('taskscheduler', ['status', '--json', '-b', brokers(), '--group', group]);
    return JSON.parse(r.stdout) as StatusJson;
  };
  /** Fires per task id; each one-shot must be there once. */
  const fires = (): Map<string, number> => {
    const n = new Map<string, number>();
    for (const t of fx.reader.values<TaskMessage>(fx.topic))
      n.set(t.scheduleId, (n.get(t.scheduleId) ?? 0) + 1);
    return n;
  };
  const firedOnce = (defs: TaskDefinition[]): boolean => {
    const n = fires();
    return defs.every((d) => n.get(d.id) === 1);
  };

  it('should hold only its partitions definitions in each instance and fire each once, also after one stops', async () => {
    const first = oneShots(0, 60, Date.now() + 25_000);
    await write(first);
    const a = scheduler();
    const b = scheduler();
    // Both in the group, each holding its share: the counts add up to the total, neither holds them all.
    await waitFor(
      async () => {
        const [na, nb] = await Promise.all([held(a), held(b)]);
        return na + nb === 60 && na > 0 && nb > 0;
      },
      { timeoutMs: 40_000, what: `the two instances splitting the definitions\n${a.output.slice(-1500)}` },
    );
    const split = await status();
    const counts = split.instances.map((i) => i.apiDefinitions ?? -1);
    expect(counts).toHaveLength(2);
    expect(counts.reduce((x, y) => x + y, 0)).toBe(60);
    expect(counts.every((n) => n > 0 && n < 60)).toBe(true);
    await waitFor(() => firedOnce(first), { timeoutMs: 40_000, what: 'the first 60 one-shots firing' });

    // b stops; a takes its partitions over, reading their definitions again before arming them.
    const second = oneShots(60, 60, Date.now() + 10_000);
    await write(second);
    await waitFor(async () => (await held(a)) + (await held(b)) === 120, {
      timeoutMs: 20_000,
      what: 'the second batch held',
    });
    b.signal('SIGTERM');
    await b.exited;
    await waitFor(async () => (await held(a)) === 120, {
      timeoutMs: 40_000,
      what: `the survivor holding every definition\n${a.output.slice(-1500)}`,
    });
    await waitFor(() => firedOnce(second), { timeoutMs: 40_000, what: 'the second 60 one-shots firing' });
    const n = fires();
    expect([...first, ...second].filter((d) => n.get(d.id) !== 1)).toEqual([]);
    expect([...n.values()].reduce((x, y) => x + y, 0)).toBe(120);
  });
});
