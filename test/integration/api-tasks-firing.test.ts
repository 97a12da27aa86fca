import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, produce, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { opsUrl, scrape, total } from './helpers/metrics.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { taskDefinition } from '../kit/definitions.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { definitionRecord, TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import { OP_HEADER } from '../../src/shared/tasks/task-log.js';

interface StatusJson {
  instances: Array<{ pid: number; partitions: number[]; apiDefinitions?: number }>;
}
import type { TaskDefinition, TaskSchedule } from '../../src/shared/tasks/definition.js';

describe('a scheduler group firing task definitions from taskmanager.tasks', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let group: string;
  let prefix: string;

  beforeEach(() => {
    group = uniqueName('api-group');
    prefix = `${uniqueName('t')}-`;
  });

  const define = (id: string, schedule: TaskSchedule, over: Partial<TaskDefinition> = {}): TaskDefinition =>
    taskDefinition(`${prefix}${id}`, group, fx.topic, schedule, { name: id, ...over });
  const write = (defs: Array<TaskDefinition | { id: string; tombstone: true }>) =>
    produce(
      TASKS_TOPIC,
      defs.map((d) =>
        'tombstone' in d ? { key: d.id, value: null } : { key: d.id, value: JSON.stringify(d) },
      ),
    );
  const of = (id: string) =>
    fx.reader.values<TaskMessage>(fx.topic).filter((t) => t.scheduleId === `${prefix}${id}`);

  it('should fire them like file entries, apply changes and deletions as they come, and skip bad ones', async () => {
    const past = new Date(Date.now() - 30_000).toISOString();
    await write([
      define('every', { every: '2s' }),
      define('once-late', { runAt: past }),
      define('other-group', { every: '1s' }, { group: `${group}-other` }),
    ]);
    await produce(TASKS_TOPIC, [{ key: `${prefix}garbage`, value: '{"v":1,"id":"nope"' }]);
    const s = startCli('taskscheduler', ['-b', brokers(), '-s', 'none', '--group', group]);
    await waitFor(() => of('every').length >= 2 && of('once-late').length === 1, {
      timeoutMs: 30_000,
      what: `API tasks firing\n${s.output.slice(-2000)}`,
    });
    expect(s.output).toMatch(
      new RegExp(`ignoring ${TASKS_TOPIC}/\\d+@\\d+ \\(task ${prefix}garbage\\): not JSON`),
    );
    expect(s.output).toContain(`one-shot ${prefix}once-late was due at ${past}`);

    // Added while running: fires; changed: follows its new spec; deleted: stops.
    const addedAt = Date.now();
    await write([
      define('cron', { cron: '* * * * * *' }),
      define('every', { every: '1s' }, { enabled: false }),
    ]);
    await waitFor(() => of('cron').length >= 2, { timeoutMs: 20_000, what: 'the added task firing' });
    const deletedAt = Date.now();
    await write([{ id: `${prefix}cron`, tombstone: true }, define('canary', { cron: '* * * * * *' })]);
    // The canary, written with the deletion, fires twice after it: the scheduler is alive and has read both.
    await waitFor(
      () => of('canary').filter((x) => Date.parse(x.scheduledFor) > deletedAt + 1000).length >= 2,
      {
        timeoutMs: 20_000,
        what: 'the canary firing after the deletion',
      },
    );
    const after = (id: string, t: number) => of(id).filter((x) => Date.parse(x.scheduledFor) > t + 1000);
    expect(after('cron', deletedAt)).toEqual([]);
    expect(after('every', addedAt)).toEqual([]);
    expect(of('other-group')).toEqual([]);
    expect(of('once-late')).toHaveLength(1);
  });

  const oneShots = (from: number, count: number, runAtMs: number): TaskDefinition[] =>
    Array.from({ length: count }, (_, i) =>
      define(`${from + i}`, { runAt: new Date(runAtMs).toISOString() }),
    );
  const writeAsTaskapi = async (defs: TaskDefinition[]): Promise<void> => {
    // As taskapi writes them (tm-group header), but for every third one, as written before that header existed.
    const records = defs.map((d, i) => {
      const r = definitionRecord(d, { [OP_HEADER]: 'create' });
      return { key: r.key, value: r.value, headers: i % 3 === 0 ? { [OP_HEADER]: 'create' } : r.headers };
    });
    await produce(TASKS_TOPIC, records);
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

  it('should hold in each of two instances only the definitions of its state partitions, and fire each once, also after one stops', async () => {
    const first = oneShots(0, 60, Date.now() + 25_000);
    await writeAsTaskapi(first);
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
    await writeAsTaskapi(second);
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
