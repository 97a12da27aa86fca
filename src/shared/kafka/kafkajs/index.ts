import { createRequire } from 'node:module';
import type { Kafka } from 'kafkajs';
import { fixStaleGroupCoordinator } from './coordinator-fix.js';
import { fixAbortedTransactionFilter } from './fetch-fixes.js';
import { fixConcurrentProduceRetries } from './produce-fixes.js';
import { fixIdleRequestQueueLoop } from './request-queue-fix.js';
import { useFastRecordEncoder } from './record-encoder.js';
import { fixQuadraticGrouping } from './grouping-fix.js';
import { runHooksBeforeJoin } from './rejoin-hook.js';

export { transactionLedger } from './produce-fixes.js';
export { PartitionedMessages } from './grouping-fix.js';
export { beforeGroupJoin } from './rejoin-hook.js';

/**
 * Everything taskmanager takes from kafkajs beyond its public API lives in this folder: the fixes it applies to
 * kafkajs 2.2.4 (unmaintained upstream) and the one private call it makes. Each fix recognises the code it was
 * written for and reports false when that code moved; {@link useKafkajsInternals} then stops the program with one
 * line naming the kafkajs version and what moved, instead of running with a fix silently not applied.
 */
export const KAFKAJS_VERSION_KNOWN = '2.2.4';

/** The symbol kafkajs keeps its cluster factory under (LeaveGroup for another member needs a cluster). */
const CREATE_CLUSTER = 'private:Kafka:createCluster';

export interface InternalCheck {
  /** What in kafkajs it depends on, for the error. */
  what: string;
  /** Applies the fix (or looks the internal up); false when kafkajs's code is not the one it knows. */
  apply(): boolean;
}

/** The kafkajs version installed (its package.json). */
export function kafkajsVersion(): string {
  const require = createRequire(import.meta.url);
  return (require('kafkajs/package.json') as { version: string }).version;
}

const CHECKS: InternalCheck[] = [
  {
    what: 'network/requestQueue scheduleCheckPendingRequests (idle 1 ms timer)',
    apply: fixIdleRequestQueueLoop,
  },
  {
    what: 'producer/sendMessages and Broker.produce/addPartitionsToTxn (transactional retries)',
    apply: fixConcurrentProduceRetries,
  },
  {
    what: 'protocol/recordBatch/record/v0 and the Produce v3-v7 requests (records encoded in one buffer each)',
    apply: useFastRecordEncoder,
  },
  {
    what: 'producer/groupMessagesPerPartition (messages grouped by partition in linear time)',
    apply: fixQuadraticGrouping,
  },
  {
    what: 'consumer/filterAbortedMessages and the Fetch v4-v11 answers (read_committed)',
    apply: fixAbortedTransactionFilter,
  },
  {
    what: 'consumer/consumerGroup heartbeat and join (group coordinator looked up again when unreachable)',
    apply: fixStaleGroupCoordinator,
  },
  {
    what: 'consumer/consumerGroup joinAndSync and the runner rejoining through it (work finished before a rebalance)',
    apply: runHooksBeforeJoin,
  },
  {
    what: `the Kafka client's cluster factory (Symbol "${CREATE_CLUSTER}", for LeaveGroup)`,
    apply: () => {
      const require = createRequire(import.meta.url);
      const { Kafka: K } = require('kafkajs') as { Kafka: new (o: object) => Kafka };
      return clusterFactory(new K({ brokers: ['127.0.0.1:1'], logLevel: 0 })) !== undefined;
    },
  },
];

let checked = false;

/**
 * Applies every fix and checks every internal once per process; throws one line naming the kafkajs version and
 * each internal that moved. Called when the Kafka door (client.ts) is loaded, so a program fails at start-up.
 */
export function useKafkajsInternals(checks: readonly InternalCheck[] = CHECKS): void {
  if (checked && checks === CHECKS) return;
  const moved = checks.filter((c) => !c.apply()).map((c) => c.what);
  if (moved.length > 0)
    throw new Error(
      `kafkajs ${kafkajsVersion()} is not the version taskmanager's Kafka adapter was written for ` +
        `(${KAFKAJS_VERSION_KNOWN}): ${moved.join('; ')} changed. Install kafkajs ${KAFKAJS_VERSION_KNOWN} ` +
        `(npm ci), or adapt src/shared/kafka/kafkajs/ to it.`,
    );
  if (checks === CHECKS) checked = true;
}

interface InternalCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(o: {
    groupId: string;
  }): Promise<{ leaveGroup(o: { groupId: string; memberId: string }): Promise<unknown> }>;
}

function clusterFactory(kafka: Kafka): ((o: object) => InternalCluster) | undefined {
  const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER);
  const create = key ? (kafka as unknown as Record<symbol, unknown>)[key] : undefined;
  return typeof create === 'function' ? (create as (o: object) => InternalCluster) : undefined;
}

/**
 * Sends LeaveGroup for `memberId`: kafkajs has no public call for it, so this uses the cluster factory every
 * kafkajs client is built with (checked at start-up by {@link useKafkajsInternals}).
 */
export async function leaveGroupAs(kafka: Kafka, groupId: string, memberId: string): Promise<void> {
  const create = clusterFactory(kafka);
  if (!create) throw new Error('this kafkajs has no cluster factory to send LeaveGroup with');
  const cluster = create({});
  await cluster.connect();
  try {
    const coordinator = await cluster.findGroupCoordinator({ groupId });
    await coordinator.leaveGroup({ groupId, memberId });
  } finally {
    await cluster.disconnect().catch(() => undefined);
  }
}
