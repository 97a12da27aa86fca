import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, produce, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition, TaskSchedule } from '../../src/shared/tasks/definition.js';

describe('a scheduler group firing task definitions from taskmanager.tasks', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let group: string;
  let prefix: string;

  beforeEach(() => {
    group = uniqueName('api-group');
    prefix = `${uniqueName('t')}-`;
  });

  const define = (id: string, schedule: TaskSchedule, over: Partial<TaskDefinition> = {}): TaskDefinition => {
    const now = new Date().toISOString();
    return {
      v: 1,
      id: `${prefix}${id}`,
      name: id,
      processor: 'NoopProcessor',
      topic: fx.topic,
      schedule,
      timeZone: 'UTC',
      misfire: 'fire-once',
      enabled: true,
      group,
      createdAt: now,
      updatedAt: now,
      ...over,
    };
  };
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
});
