/**
 * Runs our GroupScheduler in the benchmark's process, publishing to a real broker, and reads back what it
 * published.
 */
import { randomUUID } from 'node:crypto';
import { GroupScheduler } from '../../src/scheduler/group-scheduler.js';
import type { GroupSchedulerOptions } from '../../src/scheduler/group-scheduler.js';
import { systemClock } from '../../src/shared/clock.js';
import { decodeTaskMessage } from '../../src/shared/codecs/task-message.js';
import type { ScheduleEntry } from '../../src/shared/config/schema.js';
import type { KafkaConnection } from '../../src/shared/kafka/security.js';
import { KafkaClient } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { waitFor } from '../../test/kit/wait.js';

/** One schedule entry per spec, ids `bench-<i>`, processor NoopProcessor, misfire skip. */
export function benchEntries(specs: readonly string[], topic: string): ScheduleEntry[] {
  return specs.map((cron, i) => ({
    id: `bench-${i}`,
    spec: { kind: 'cron' as const, cron },
    topic,
    timeZone: 'UTC',
    enabled: true,
    misfire: 'skip',
    misfireWindowSeconds: 3600,
    processor: 'NoopProcessor',
    index: i,
  }));
}

export interface OursRun {
  kafka: KafkaClient;
  scheduler: GroupScheduler;
  group: string;
  /** Start to ready (group joined, every state partition taken over), ms. */
  readyMs: number;
}

/** Starts a scheduler in a fresh group and resolves once it is ready (rejects after `timeoutMs`). */
export async function startOurs(
  brokers: string[],
  entries: ScheduleEntry[],
  onAcked: GroupSchedulerOptions['onAcked'],
  timeoutMs = 60_000,
  connection?: KafkaConnection,
): Promise<OursRun> {
  const kafka = new KafkaClient({
    brokers,
    logger: silentLogger,
    clientId: 'bench',
    ...(connection ? { connection } : {}),
  });
  const group = `bench-${randomUUID()}`;
  const scheduler = new GroupScheduler({
    kafka,
    entries,
    group,
    clock: systemClock,
    logger: silentLogger,
    onAcked,
  });
  const t0 = Date.now();
  await scheduler.start();
  const ready = (): boolean => {
    const r = scheduler.readiness();
    return r.ready && r.assigned.length > 0;
  };
  await waitFor(ready, {
    timeoutMs,
    intervalMs: 20,
    what: () => `the scheduler to be ready (${scheduler.readiness().reason})`,
  }).catch(async (err: unknown) => {
    await scheduler.stop({ deadlineMs: 1000 });
    throw err;
  });
  return { kafka, scheduler, group, readyMs: Date.now() - t0 };
}

/** One fire read back from the task topic. */
export interface Published {
  scheduleId: string;
  scheduledMs: number;
  firedMs: number;
}

/** Every task message of `group` on `topic` (read_committed, to the end). */
export async function readPublished(kafka: KafkaClient, topic: string, group: string): Promise<Published[]> {
  const out: Published[] = [];
  for (const r of await kafka.readToEnd(topic, 300_000)) {
    if (!r.value) continue;
    const m = decodeTaskMessage(r.value);
    if (m.scheduler.group !== group) continue;
    out.push({
      scheduleId: m.scheduleId,
      scheduledMs: Date.parse(m.scheduledFor),
      firedMs: Date.parse(m.firedAt),
    });
  }
  return out;
}
