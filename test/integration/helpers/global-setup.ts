import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { whenReadable } from '../../kit/kafka.js';
import type { TestProject } from 'vitest/node';
import { USERS_TOPIC } from '../../../src/api/auth/user-view.js';
import { COMMANDS_TOPIC } from '../../../src/shared/codecs/scheduler-control.js';
import { AUDIT_TOPIC, EVENTS_TOPIC } from '../../../src/shared/codecs/task-event.js';
import { CANCELS_TOPIC } from '../../../src/shared/codecs/cancel-request.js';
import { CALENDARS_TOPIC } from '../../../src/shared/tasks/calendars.js';
import { LOGS_TOPIC } from '../../../src/shared/codecs/run-log.js';
import { SCHEDULER_STATE_TOPIC } from '../../../src/shared/codecs/scheduler-state.js';
import { TASKS_TOPIC } from '../../../src/shared/tasks/definition.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const SCRIPT = resolve(ROOT, 'scripts/kafka-local');

declare module 'vitest' {
  export interface ProvidedContext {
    brokers: string;
    /** True when the tests use the scripts/kafka-local broker (so a test may stop and restart it). */
    localBroker: boolean;
  }
}

/** Topics every test shares (names fixed by docs/messages-and-topics.md#topics), made by the same script users run. */
function createSharedTopics(brokers: string): void {
  execFileSync('bash', [resolve(ROOT, 'scripts/create-topics.sh'), '--bootstrap-server', brokers], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

const SHARED_TOPICS = [
  EVENTS_TOPIC,
  SCHEDULER_STATE_TOPIC,
  COMMANDS_TOPIC,
  TASKS_TOPIC,
  USERS_TOPIC,
  CANCELS_TOPIC,
  AUDIT_TOPIC,
  CALENDARS_TOPIC,
  LOGS_TOPIC,
];

/**
 * Uses the cluster in KAFKA_BROKERS when set; otherwise starts the local broker (scripts/kafka-local) and stops
 * it afterwards, unless it was already running before the tests (then it is left as found). With CI set, a broker
 * started here begins from a fresh data dir (`kafka-local reset`).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let brokers = process.env.KAFKA_BROKERS;
  let startedHere = false;
  if (!brokers) {
    const wasRunning = spawnSync('bash', [SCRIPT, 'status'], { cwd: ROOT }).status === 0;
    if (!wasRunning) {
      // CI starts each tier from an empty data dir: no test may depend on what an earlier run left behind.
      if (process.env.CI) execFileSync('bash', [SCRIPT, 'reset'], { cwd: ROOT, stdio: 'inherit' });
      const r = spawnSync('bash', [SCRIPT, 'start'], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) {
        throw new Error(
          `scripts/kafka-local start failed (exit ${r.status}); to test against another cluster set KAFKA_BROKERS`,
        );
      }
      startedHere = true;
    }
    brokers = `127.0.0.1:${process.env.KAFKA_LOCAL_PORT ?? '9092'}`;
  }
  createSharedTopics(brokers);
  // create-topics.sh returns once the topics exist; on a broker that has just started their partitions may have no
  // leader yet, and the first test to read one was told "This server does not host this topic-partition".
  await whenReadable(
    new Kafka({ brokers: brokers.split(','), logLevel: logLevel.NOTHING, clientId: 'tests' }),
    SHARED_TOPICS,
  );
  project.provide('brokers', brokers);
  project.provide('localBroker', !process.env.KAFKA_BROKERS);
  return async () => {
    if (startedHere) execFileSync('bash', [SCRIPT, 'stop'], { cwd: ROOT, stdio: 'inherit' });
  };
}
