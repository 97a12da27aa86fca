import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { fixStaleGroupCoordinator } from '../../src/shared/kafka/kafkajs/coordinator-fix.js';
import {
  isBrokerUnreachable as brokerUnreachable,
  isCoordinatorMoving as coordinatorMoving,
} from '../../src/shared/kafka/errors.js';

const require = createRequire(import.meta.url);
const { KafkaJSConnectionError, KafkaJSProtocolError, KafkaJSNumberOfRetriesExceeded } =
  require('kafkajs') as {
    KafkaJSConnectionError: new (m: string, o?: object) => Error;
    KafkaJSProtocolError: new (e: object) => Error;
    KafkaJSNumberOfRetriesExceeded: new (e: Error, o?: object) => Error;
  };
type Coordinator = { id: string; heartbeat(payload: { memberId: string }): Promise<void> };
type Group = {
  memberId: string | null;
  generationId: number | null;
  coordinator: Coordinator | null;
  lastRequest: number;
  sessionTimeout: number;
  heartbeat(o: { interval: number }): Promise<void>;
};
const ConsumerGroup = require('kafkajs/src/consumer/consumerGroup.js') as new (o: object) => Group;

const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

const refused = () =>
  new KafkaJSConnectionError('Connection error: connect ECONNREFUSED', { code: 'ECONNREFUSED' });
const { createErrorFromCode } = require('kafkajs/src/protocol/error.js') as {
  createErrorFromCode: (code: number) => { type: string; code: number; retriable: boolean; message: string };
};
/** kafkajs's error for a Kafka protocol error code, as a broker's answer gives it. */
const answer = (code: number) => new KafkaJSProtocolError(createErrorFromCode(code));
const loading = () => answer(14);
const notCoordinator = () => answer(16);

/**
 * A kafkajs ConsumerGroup in a group whose coordinator (node 1) died; the cluster names `named()` (node 2 unless the
 * test changes it), whose heartbeats answer `answer()` (success unless changed).
 */
function groupWhoseCoordinatorDied(): {
  group: Group;
  beats: string[];
  lookups: () => number;
  setLookup: (f: () => Promise<Coordinator>) => void;
} {
  const beats: string[] = [];
  let lookups = 0;
  const dead: Coordinator = {
    id: 'node 1',
    heartbeat: () => Promise.reject(refused()),
  };
  const alive: Coordinator = {
    id: 'node 2',
    heartbeat: (p) => {
      beats.push(`${p.memberId} at node 2`);
      return Promise.resolve();
    },
  };
  let lookup = () => Promise.resolve(alive);
  const group = new ConsumerGroup({
    cluster: {
      findGroupCoordinator: () => {
        lookups++;
        return lookup();
      },
    },
    groupId: 'g',
    topics: [],
    topicConfigurations: {},
    logger: { namespace: () => quiet },
    instrumentationEmitter: { emit: () => undefined },
    retry: {},
  });
  Object.assign(group, {
    memberId: 'm-1',
    generationId: 3,
    coordinator: dead,
    lastRequest: Date.now(),
    sessionTimeout: 6000,
  });
  return {
    group,
    beats,
    lookups: () => lookups,
    setLookup: (f) => {
      lookup = f;
    },
  };
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
    const rebalancing = answer(27);
    group.coordinator = { id: 'node 1', heartbeat: () => Promise.reject(rebalancing) };
    await expect(group.heartbeat({ interval: 0 })).rejects.toBe(rebalancing);
    expect(lookups()).toBe(0);
    expect(brokerUnreachable(rebalancing)).toBe(false);
  });

  it('should keep the member while the dead broker is still named coordinator, then heartbeat the new one', async () => {
    expect(fixStaleGroupCoordinator()).toBe(true);
    const { group, beats, setLookup } = groupWhoseCoordinatorDied();
    // Until the controller fences the dead node, the cluster names it and kafkajs's retries give up on it.
    setLookup(() => Promise.reject(new KafkaJSNumberOfRetriesExceeded(refused(), { retryCount: 5 })));
    await group.heartbeat({ interval: 0 });
    expect(group.memberId).toBe('m-1');
    // A broker whose metadata is behind names itself, and is not the coordinator.
    setLookup(() => Promise.resolve({ id: 'node 2', heartbeat: () => Promise.reject(notCoordinator()) }));
    await group.heartbeat({ interval: 0 });
    expect(group.memberId).toBe('m-1');
    // The new coordinator is loading the group.
    setLookup(() => Promise.resolve({ id: 'node 3', heartbeat: () => Promise.reject(loading()) }));
    await group.heartbeat({ interval: 0 });
    expect(group.memberId).toBe('m-1');
    expect(group.coordinator?.id).toBe('node 3');
    // It has loaded it: the next heartbeat, from the same member, gets there.
    group.coordinator = { id: 'node 3', heartbeat: () => Promise.reject(loading()) };
    setLookup(() =>
      Promise.resolve({
        id: 'node 3',
        heartbeat: (p) => {
          beats.push(`${p.memberId} at node 3`);
          return Promise.resolve();
        },
      }),
    );
    await group.heartbeat({ interval: 0 });
    expect(beats).toEqual(['m-1 at node 3']);
  });

  it("should give kafkajs the error once the member's session has run out", async () => {
    expect(fixStaleGroupCoordinator()).toBe(true);
    const { group, setLookup } = groupWhoseCoordinatorDied();
    group.lastRequest = Date.now() - 6001;
    const gaveUp = new KafkaJSNumberOfRetriesExceeded(refused(), { retryCount: 5 });
    setLookup(() => Promise.reject(gaveUp));
    await expect(group.heartbeat({ interval: 0 })).rejects.toBe(gaveUp);
    expect(coordinatorMoving(gaveUp)).toBe(true);
    expect(coordinatorMoving(new Error('boom'))).toBe(false);
    expect(coordinatorMoving(answer(27)), 'REBALANCE_IN_PROGRESS is a rebalance, not a move').toBe(false);
    expect([14, 15, 16].map((c) => coordinatorMoving(answer(c)))).toEqual([true, true, true]);
  });
});
