export { KafkaClient, KafkaProducer, TransactionInDoubtError } from './client.js';
export type { Placed } from './client.js';
export { isFencedError, isRebalancing, kafkaErrorType } from './errors.js';
export { GroupConsumer } from './group-consumer.js';
export type { KafkaOptions, ConsumerOptions, TopicLayout } from './client.js';
export type { RunOptions } from './group-consumer.js';
export type {
  CommitPosition,
  InRecord,
  OutRecord,
  PartitionBatch,
  RecordHeaders,
  GroupAssignment,
} from './types.js';
export { BatchingSender } from './batching-sender.js';
export { partitionForKey } from './partition.js';
export type { Follower, FollowOptions } from './follow.js';
export type { GroupStatus, GroupMember, PartitionLag } from './group-status.js';
export { KAFKA_SILENT_MS, membershipProblem } from './membership.js';
export type { MembershipHealth } from './membership.js';
