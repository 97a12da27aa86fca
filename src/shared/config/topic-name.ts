/** Kafka's own rule for topic names (kafka.common.internals.Topic). */
const LEGAL = /^[a-zA-Z0-9._-]+$/;
const MAX_LENGTH = 249;

/** Why a topic name is illegal, or `undefined` when Kafka would accept it. */
export function topicNameProblem(name: string): string | undefined {
  if (name === '.' || name === '..') return 'topic name cannot be "." or ".."';
  if (name.length > MAX_LENGTH) return `topic name is longer than ${MAX_LENGTH} characters`;
  if (!LEGAL.test(name)) return 'topic name may only contain ASCII letters, digits, ".", "_" and "-"';
  return undefined;
}

/**
 * Why a topic cannot receive task messages: our own topics (`taskmanager.*`: users, tasks, scheduler state…),
 * Kafka's internal ones (`__*`) and dead-letter topics. A task published there could overwrite their records.
 */
export function taskTopicProblem(name: string): string | undefined {
  const problem = topicNameProblem(name);
  if (problem) return problem;
  if (name.startsWith('taskmanager.') || name.startsWith('__') || name.endsWith('.dlq'))
    return `${name} is an internal topic (taskmanager.*, __*, *.dlq), not a task topic`;
  return undefined;
}
