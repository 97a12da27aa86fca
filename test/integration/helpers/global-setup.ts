import { execFileSync, spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import type { TestProject } from 'vitest/node';

const ROOT = resolve(import.meta.dirname, '../../..');
const SCRIPT = resolve(ROOT, 'scripts/kafka-local');

declare module 'vitest' {
  export interface ProvidedContext {
    brokers: string;
    /** True when the tests use the scripts/kafka-local broker (so a test may stop and restart it). */
    localBroker: boolean;
  }
}

/** Topics every test shares (names fixed by SPEC.md §4), made by the same script users run. */
function createSharedTopics(brokers: string): void {
  execFileSync('bash', [resolve(ROOT, 'scripts/create-topics.sh'), '--bootstrap-server', brokers], {
    cwd: ROOT,
    stdio: 'inherit',
  });
}

/**
 * Uses the cluster in KAFKA_BROKERS when set; otherwise starts the local broker (scripts/kafka-local) and stops
 * it afterwards, unless it was already running before the tests (then it is left as found).
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let brokers = process.env.KAFKA_BROKERS;
  let startedHere = false;
  if (!brokers) {
    const wasRunning = spawnSync('bash', [SCRIPT, 'status'], { cwd: ROOT }).status === 0;
    if (!wasRunning) {
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
  project.provide('brokers', brokers);
  project.provide('localBroker', !process.env.KAFKA_BROKERS);
  return async () => {
    if (startedHere) execFileSync('bash', [SCRIPT, 'stop'], { cwd: ROOT, stdio: 'inherit' });
  };
}
