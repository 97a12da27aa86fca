export { KafkaClient, TaskProducer, GroupConsumer } from './client.js';
export type { KafkaOptions, ConsumerOptions, RunOptions } from './client.js';
export type { InRecord, OutRecord, PartitionBatch, RecordHeaders, GroupAssignment } from './types.js';
export { BatchingSender } from './batching-sender.js';
