import type { TaskDefinition, TaskSchedule } from '../../src/shared/tasks/definition.js';

/**
 * A valid `taskmanager.tasks` definition (docs/messages-and-topics.md#task-definitions-and-users) of the
 * NoopProcessor in UTC, created now, for the tests and benchmarks that write definitions straight into the topic.
 */
export function taskDefinition(
  id: string,
  group: string,
  topic: string,
  schedule: TaskSchedule,
  over: Partial<TaskDefinition> = {},
): TaskDefinition {
  const now = new Date().toISOString();
  return {
    v: 1,
    id,
    name: id,
    processor: 'NoopProcessor',
    topic,
    schedule,
    timeZone: 'UTC',
    misfire: 'fire-once',
    enabled: true,
    group,
    createdAt: now,
    updatedAt: now,
    ...over,
  };
}
