import { taskTopicProblem } from '../shared/config/topic-name.js';
import { AppError } from '../shared/errors.js';

/** The task topics `scripts/create-topics.sh` makes when given no `--topic`: what taskapi allows by default. */
export const DEFAULT_TASK_TOPICS: readonly string[] = ['taskTopic'];

/**
 * The topics tasks created over HTTP may name: `--task-topics` (default {@link DEFAULT_TASK_TOPICS}), and always
 * `--topic`, where tasks that name none go. Operators otherwise could aim a task at any topic of the cluster the
 * taskapi principal may write (another application's, `_schemas`, `connect-configs`). A name that is illegal or
 * internal is a usage error, so a typo stops taskapi at start instead of refusing every task.
 */
export function allowedTaskTopics(given: readonly string[] | undefined, defaultTopic: string): string[] {
  const allowed = [...new Set([...(given ?? DEFAULT_TASK_TOPICS), defaultTopic])];
  for (const topic of allowed) {
    const problem = taskTopicProblem(topic);
    if (problem) throw new AppError('USAGE', `--task-topics ${JSON.stringify(topic)}: ${problem}`);
  }
  return allowed;
}

/** Why a task may not go to `topic` (one line naming it and the allowed ones), or `undefined` when it may. */
export function taskTopicRefusal(topic: string, allowed: readonly string[]): string | undefined {
  if (allowed.includes(topic)) return undefined;
  return `${topic} is not a task topic of this taskapi (allowed: ${allowed.join(', ')}); an admin adds it with taskapi --task-topics (env TASKAPI_TASK_TOPICS)`;
}
