import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import {
  brokerUnreachable,
  fixStaleGroupCoordinator,
} from '../../src/shared/kafka/kafkajs/coordinator-fix.js';

const require = createRequire(import.meta.url);
const { KafkaJSConnectionError, KafkaJSProtocolError } = require('kafkajs') as {
  KafkaJSConnectionError: new (m: string, o?: object) => Error;
  KafkaJSProtocolError: new (e: object) => Error;
};
type Coordinator = { id: string; heartbeat(payload: { memberId: string }): Promise<void> };
type Group = {
  memberId: string | null;
  generationId: number | null;
  coordinator: Coordinator | null;
  lastRequest: number;
  heartbeat(o: { interval: number }): Promise<void>;
};
const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup.js') as new (o: object) => Group;

const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** A kafkajs ConsumerGroup in a group whose coordinator (node 1) died; the cluster now names node 2. */
function groupWhoseCoordinatorDied(): { group: Group; beats: string[]; lookups: () => number } {
  const beats: string[] = [];
  let lookups = 0;
  const dead: Coordinator = {
    id: 'node 1',
    heartbeat: () =>
      Promise.reject(
        new KafkaJSConnectionError('Connection error: connect ECONNREFUSED', { code: 'ECONNREFUSED' }),
      ),
  };
  const alive: Coordinator = {
    id: 'node 2',
    heartbeat: (p) => {
      beats.push(`${p.memberId} at node 2`);
      return Promise.resolve();
    },
  };
  const group = new ConsumerGroup({
    cluster: {
      findGroupCoordinator: () => {
        lookups++;
        return Promise.resolve(alive);
      },
    },
    groupId: 'g',
    topics: [],
    topicConfigurations: {},
    logger: { namespace: () => quiet },
    instrumentationEmitter: { emit: () => undefined },
    retry: {},
  });
  Object.assign(group, { memberId: 'm-1', generationId: 3, coordinator: dead, lastRequest: 0 });
  return { group, beats, lookups: () => lookups };
}

describe('kafkajs group coordinator looked up again when its broker is gone', () => {
  it('should heartbeat the new coordinator with the same member id instead of failing until kafkajs rejoins as a new member', async () => {
    expect(fixStaleGroupCoordinator()).toBe(true);
    const { group, beats, lookups } = groupWhoseCoordinatorDied();
    await group.heartbeat({ interval: 0 });
    expect(beats).toEqual(['m-1 at node 2']);
    expect(group.coordinator?.id).toBe('node 2');
    expect(group.memberId).toBe('m-1');
    expect(lookups()).toBe(1);
  });

  it('should leave a broker answer (not an unreachable broker) to kafkajs', async () => {
    expect(fixStaleGroupCoordinator()).toBe(true);
    const { group, lookups } = groupWhoseCoordinatorDied();
    const rebalancing = new KafkaJSProtocolError({
      type: 'REBALANCE_IN_PROGRESS',
      code: 27,
      retriable: false,
      message: 'rebalancing',
    });
    group.coordinator = { id: 'node 1', heartbeat: () => Promise.reject(rebalancing) };
    await expect(group.heartbeat({ interval: 0 })).rejects.toBe(rebalancing);
    expect(lookups()).toBe(0);
    expect(brokerUnreachable(rebalancing)).toBe(false);
  });
});
