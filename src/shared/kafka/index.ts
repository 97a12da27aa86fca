export { KafkaClient, TaskProducer, TransactionInDoubtError, isFencedError } from './client.js';
export { GroupConsumer } from './group-consumer.js';
export type { KafkaOptions, ConsumerOptions } from './client.js';
export type { RunOptions } from './group-consumer.js';
export type { InRecord, OutRecord, PartitionBatch, RecordHeaders, GroupAssignment } from './types.js';
export { BatchingSender } from './batching-sender.js';
export { partitionForKey } from './partition.js';
export type { Follower } from './follow.js';
export type { GroupStatus, GroupMember, PartitionLag } from './group-status.js';
