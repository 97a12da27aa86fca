import type { TaskDefinition } from '../../../src/shared/tasks/definition.js';
import type { ScheduleEntry } from '../../../src/shared/config/schema.js';
import { parseScheduleText } from '../../../src/shared/config/load.js';
import { ConfigError, formatProblem } from '../../../src/shared/errors.js';

/** A schedule entry as the loader makes it: UTC, enabled, fire-once, the NoopProcessor, on topic `t`. */
export function cronEntry(id: string, cron: string, extra: Partial<ScheduleEntry> = {}): ScheduleEntry {
  return {
    id,
    spec: { kind: 'cron', cron },
    topic: 't',
    timeZone: 'UTC',
    enabled: true,
    misfire: 'fire-once',
    misfireWindowSeconds: 3600,
    processor: 'NoopProcessor',
    index: 0,
    ...extra,
  };
}

/** A valid task definition of `taskmanager.tasks` (every 5 s, group g, NoopProcessor), created at `at`. */
export function taskDefinition(id: string, at: string, over: Partial<TaskDefinition> = {}): TaskDefinition {
  return {
    v: 1,
    id,
    name: id,
    processor: 'NoopProcessor',
    topic: 'taskTopic',
    schedule: { every: '5s' },
    timeZone: 'UTC',
    misfire: 'fire-once',
    enabled: true,
    group: 'g',
    createdAt: at,
    updatedAt: at,
    ...over,
  };
}

/** The problems of schedule file text named `file`, one formatted line each ([] when it is valid). */
export function scheduleFileProblems(text: string, file = 's.json'): string[] {
  try {
    parseScheduleText(file, text);
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.problems.map(formatProblem);
  }
}
