import { silentLogger } from '../shared/logger.js';
import { systemClock } from '../shared/clock.js';
import { AppError } from '../shared/errors.js';
import { connectKafka, stderrWarnings } from '../shared/cli-common.js';
import type { KafkaCliOptions } from '../shared/cli-common.js';
import { textTable } from '../shared/text-table.js';
import { actor } from '../shared/actor.js';
import { checkedPassword } from './auth/passwords.js';
import { UserStore } from './auth/user-store.js';
import { KafkaStore } from './kafka-store.js';
import { ApiError } from './problem.js';

/** Runs one user operation straight against `taskmanager.users` (operators at the shell; no HTTP, no token). */
export async function withUsers<T>(
  target: KafkaCliOptions,
  run: (users: UserStore, by: string) => Promise<T>,
): Promise<T> {
  const kafka = await connectKafka(target, stderrWarnings, `taskapi-users-${process.pid}`);
  const store = new KafkaStore({ kafka, logger: silentLogger, clock: systemClock });
  const users = new UserStore(store, systemClock, silentLogger);
  try {
    await store.start(users.topics());
    return await run(users, `cli:${actor()}`);
  } catch (err) {
    if (err instanceof ApiError) throw new AppError('USAGE', err.message);
    throw err;
  } finally {
    await store.stop();
  }
}

/** The password for `users add`: TASKAPI_PASSWORD, or the first line of stdin (never an argument: ps shows those). */
export async function readPassword(): Promise<string> {
  const fromEnv = process.env.TASKAPI_PASSWORD;
  if (fromEnv) return checkedPassword(fromEnv, 'TASKAPI_PASSWORD');
  if (process.stdin.isTTY)
    throw new AppError(
      'USAGE',
      'give the password on stdin (echo "$PW" | taskapi users add …) or in TASKAPI_PASSWORD',
    );
  return checkedPassword(await firstLineOfStdin(), 'the password on stdin');
}

/** The first line of stdin (a password or a token piped in; never an argument). */
export async function firstLineOfStdin(): Promise<string> {
  let text = '';
  for await (const chunk of process.stdin) text += String(chunk);
  return text.split(/\r?\n/)[0] ?? '';
}

export function formatUsers(users: UserStore): string {
  return textTable(
    ['user', 'role', 'created', 'by'],
    users.view.allUsers().map((u) => [u.name, u.role, u.createdAt, u.createdBy ?? '-']),
  ).join('\n');
}
