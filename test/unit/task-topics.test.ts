import { describe, expect, it } from 'vitest';
import type { Principal } from '../../src/api/auth/roles.js';
import type { KafkaStore } from '../../src/api/kafka-store.js';
import { allowedTaskTopics } from '../../src/api/task-topics.js';
import { TaskService } from '../../src/api/task-service.js';
import type { TaskStore } from '../../src/api/task-store.js';
import type { ViewTask } from '../../src/api/task-view.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { TaskDefinition } from '../../src/shared/tasks/definition.js';
import { FakeClock } from './helpers/fake-clock.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const operator: Principal = { user: 'olga', role: 'operator', via: 'jwt' };

/** TaskService over an in-memory task store; every topic exists on the "cluster", other applications' too. */
function service(taskTopics: readonly string[]) {
  const tasks = new Map<string, ViewTask>();
  const written: TaskDefinition[] = [];
  const fired: string[] = [];
  const put = (def: TaskDefinition) => {
    written.push(def);
    const task: ViewTask = {
      def,
      version: String(written.length),
      state: 'SCHEDULED',
      processor: def.processor,
    };
    tasks.set(def.id, task);
    return { task };
  };
  const store = {
    topicExists: async () => true,
    send: async () => undefined,
    assertWritable: () => undefined,
  } as unknown as KafkaStore;
  const taskStore = {
    view: { get: (id: string) => tasks.get(id), latestRun: () => undefined },
    create: async (def: TaskDefinition) => put(def),
    update: async (def: TaskDefinition) => put(def),
    fireNow: async (def: TaskDefinition) => {
      fired.push(def.topic);
      return `${def.id}@now`;
    },
  } as unknown as TaskStore;
  const svc = new TaskService({
    tasks: taskStore,
    store,
    logger: silentLogger,
    clock: new FakeClock(T0),
    defaults: { topic: 'taskTopic', group: 'g', timeZone: 'UTC' },
    taskTopics,
  });
  return { svc, tasks, written, fired };
}

const refusal = {
  status: 400,
  errors: [
    {
      pointer: '/topic',
      detail: expect.stringMatching(
        /^_schemas is not a task topic of this taskapi \(allowed: taskTopic, orders\)/,
      ),
    },
  ],
};

describe('when a task names a topic outside --task-topics', () => {
  it('should refuse to create it with a 400 naming the topic and the allowed ones, and write nothing', async () => {
    const { svc, written } = service(['taskTopic', 'orders']);
    await expect(
      svc.create({ processor: 'p', schedule: { every: '5s' }, topic: '_schemas' }, operator),
    ).rejects.toMatchObject(refusal);
    expect(written).toEqual([]);
    await expect(
      svc.create({ processor: 'p', schedule: { every: '5s' }, topic: 'orders' }, operator),
    ).resolves.toMatchObject({ topic: 'orders' });
  });

  it('should refuse to move a task there with PATCH or PUT', async () => {
    const { svc, written } = service(['taskTopic', 'orders']);
    await svc.create({ id: 'a', processor: 'p', schedule: { every: '5s' } }, operator);
    await expect(svc.patch('a', { topic: '_schemas' }, undefined, operator)).rejects.toMatchObject(refusal);
    await expect(
      svc.replace('a', { processor: 'p', schedule: { every: '5s' }, topic: '_schemas' }, undefined, operator),
    ).rejects.toMatchObject(refusal);
    expect(written.map((d) => d.topic)).toEqual(['taskTopic']);
  });

  it('should refuse to trigger a task written there before the list was set', async () => {
    const { svc, tasks, fired } = service(['taskTopic', 'orders']);
    await svc.create({ id: 'old', processor: 'p', schedule: { every: '5s' } }, operator);
    const old = tasks.get('old')!;
    tasks.set('old', { ...old, def: { ...old.def, topic: '_schemas' } });
    await expect(svc.trigger('old', operator)).rejects.toMatchObject(refusal);
    expect(fired).toEqual([]);
  });
});

describe('when taskapi reads --task-topics', () => {
  it('should default to the task topic scripts/create-topics.sh makes, and always allow --topic', () => {
    expect(allowedTaskTopics(undefined, 'taskTopic')).toEqual(['taskTopic']);
    expect(allowedTaskTopics(undefined, 'orders')).toEqual(['taskTopic', 'orders']);
    expect(allowedTaskTopics(['orders', 'billing'], 'orders')).toEqual(['orders', 'billing']);
  });

  it('should refuse an internal or illegal topic in the list, naming it', () => {
    expect(() => allowedTaskTopics(['orders', 'taskmanager.users'], 'orders')).toThrow(
      /--task-topics "taskmanager.users": taskmanager.users is an internal topic/,
    );
    expect(() => allowedTaskTopics(['a b'], 'orders')).toThrow(/--task-topics "a b": topic name may only/);
  });
});
