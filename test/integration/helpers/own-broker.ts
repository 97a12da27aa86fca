import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { afterAll, beforeAll } from 'vitest';
import { rawKafka } from '../../../bench/lib/kafka-bench.js';
import { whenReadable } from '../../kit/kafka.js';
import { OwnBroker } from '../../kit/own-broker.js';
import { SCHEDULER_STATE_TOPIC } from '../../../src/shared/codecs/scheduler-state.js';

/**
 * A broker of the calling suite's own (scripts/kafka-local on free ports, the shared topics made by
 * create-topics.sh), started before its tests and deleted with all its data after them: for tests that fill a
 * shared topic (the scheduler state) with more than other tests should ever read.
 */
export function useOwnBroker(): { bootstrap(): string; kafka(): Kafka } {
  const dir = mkdtempSync(join(tmpdir(), 'tm-own-broker-'));
  let broker: OwnBroker | undefined;
  beforeAll(async () => {
    broker = await OwnBroker.create(dir);
    await broker.start();
    await broker.createSharedTopics();
    await whenReadable(rawKafka(broker.brokers, 'tests-own'), [SCHEDULER_STATE_TOPIC]);
  }, 180_000);
  afterAll(async () => {
    await broker?.dispose(dir);
    rmSync(dir, { recursive: true, force: true });
  }, 180_000);
  const started = (): OwnBroker => {
    if (!broker) throw new Error('useOwnBroker: use the broker inside a test');
    return broker;
  };
  return {
    bootstrap: () => started().brokers.join(','),
    kafka: () => rawKafka(started().brokers, 'tests-own'),
  };
}
