import { afterEach, describe, expect, it } from 'vitest';
import { ClusterStatus } from '../../src/api/cluster-status.js';
import { KafkaStore } from '../../src/api/kafka-store.js';
import { TaskStore } from '../../src/api/task-store.js';
import type { ErrorCode } from '../../src/shared/errors.js';
import { systemClock } from '../../src/shared/clock.js';
import { silentLogger } from '../../src/shared/logger.js';
import { COMMANDS_TOPIC } from '../../src/shared/codecs/scheduler-control.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import { MemoryKafka } from './helpers/memory-kafka.js';

const GROUP = 'taskscheduler-ops';

/**
 * taskapi's cluster view over {@link MemoryKafka}, with one scheduler instance of GROUP that owns entry `nightly` in
 * its status answers and refuses every trigger with `refusal`.
 */
async function clusterWithScheduler(refusal: { code?: ErrorCode; message: string }): Promise<ClusterStatus> {
  const kafka = new MemoryKafka();
  kafka.groups = [
    {
      groupId: GROUP,
      state: 'Stable',
      members: [{ memberId: 'm1', clientId: 'c', host: 'h', assignment: { [SCHEDULER_STATE_TOPIC]: [0] } }],
    },
  ];
  const producer = kafka.producer();
  await kafka.follow(COMMANDS_TOPIC, (r) => {
    const c = JSON.parse(r.value?.toString() ?? '{}') as { kind?: string; id: string; type: string };
    if (c.kind !== 'command') return;
    const answer =
      c.type === 'status'
        ? {
            ok: true,
            message: 'ok',
            partitions: [0],
            entries: [
              {
                id: 'nightly',
                source: 'file',
                spec: '0 0 2 * * *',
                timeZone: 'UTC',
                topic: 'taskTopic',
                processor: 'LogProcessor',
                state: 'enabled',
                partition: 0,
                nextFireTimes: [],
              },
            ],
          }
        : { ok: false, ...refusal };
    const reply = {
      v: 1,
      kind: 'reply',
      replyTo: c.id,
      group: GROUP,
      from: { host: 'h', pid: 1 },
      ...answer,
    };
    void producer.send([{ topic: COMMANDS_TOPIC, key: GROUP, value: JSON.stringify(reply) }]);
  });
  const store = new KafkaStore({ kafka: kafka.client(), logger: silentLogger, clock: systemClock });
  const tasks = new TaskStore({ store, logger: silentLogger, clock: systemClock });
  await store.start(tasks.topics());
  tasks.started();
  const cluster = new ClusterStatus({
    kafka: kafka.client(),
    view: tasks.view,
    rates: tasks.rates,
    clock: systemClock,
    logger: silentLogger,
  });
  stops.push(async () => {
    await cluster.stop();
    await store.stop();
  });
  return cluster;
}

const stops: Array<() => Promise<void>> = [];

describe('a schedule command refused by the instance that owns the entry', () => {
  afterEach(async () => {
    for (const stop of stops.splice(0)) await stop();
  });

  describe('when the owner no longer has the entry', () => {
    it('should answer 404 with the owner’s message', async () => {
      const cluster = await clusterWithScheduler({
        code: 'NOT_FOUND',
        message: `no schedule "nightly" in group ${GROUP} (see taskscheduler status)`,
      });
      await expect(cluster.command('trigger', GROUP, 'nightly', 'tester')).rejects.toMatchObject({
        status: 404,
        message: `no schedule "nightly" in group ${GROUP} (see taskscheduler status)`,
      });
    });
  });

  describe('when the owner refuses for another reason', () => {
    it('should answer 409 by the code, whatever the message says', async () => {
      const cluster = await clusterWithScheduler({
        code: 'CONFLICT',
        message: 'this instance does not own nightly (no schedule moved here yet)',
      });
      await expect(cluster.command('trigger', GROUP, 'nightly', 'tester')).rejects.toMatchObject({
        status: 409,
      });
    });

    it('should answer 409 to a reply without a code (an instance from before codes)', async () => {
      const cluster = await clusterWithScheduler({ message: 'trigger nightly failed: broker down' });
      await expect(cluster.command('trigger', GROUP, 'nightly', 'tester')).rejects.toMatchObject({
        status: 409,
      });
    });
  });
});
