import { createRequire } from 'node:module';

interface GroupCoordinator {
  heartbeat(payload: object): Promise<unknown>;
}

interface ConsumerGroup {
  groupId: string;
  memberId: string | null;
  coordinator: GroupCoordinator | null;
  cluster: { findGroupCoordinator(o: { groupId: string }): Promise<GroupCoordinator> };
  heartbeat(o: { interval: number }): Promise<void>;
}

/** The errors of a request to a broker that is gone (killed, crashed, restarting), not of a broker's answer. */
const UNREACHABLE = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
]);

/** Whether an error says the broker a request went to could not be reached. */
export function brokerUnreachable(err: unknown): boolean {
  return err instanceof Error && UNREACHABLE.has(err.name);
}

/**
 * kafkajs 2.2.4 looks the group coordinator up only when it joins: when the coordinator's broker dies (kill -9),
 * every heartbeat goes on failing against the dead address until kafkajs's retries run out (about 10 s), and it then
 * crashes and joins again as a NEW member, which rebalances the whole group (the scheduler group's members lost
 * every state partition for 15-20 s after such a kill). The group's state lives on in `__consumer_offsets`, and the
 * broker that takes that partition over knows the member: a heartbeat that cannot reach the coordinator asks the
 * cluster which broker coordinates the group now (kafkajs retries that until one answers) and heartbeats there with
 * the same member id and generation. Applied once, only to the code it was written for.
 */
export function fixStaleGroupCoordinator(): boolean {
  const require = createRequire(import.meta.url);
  const Group = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroup };
  const proto = Group.prototype;
  const original = proto.heartbeat;
  if ((original as { fixed?: boolean }).fixed) return true;
  const source = Group.toString();
  // The known shape: heartbeats go to `this.coordinator`, set only by the join's findGroupCoordinator.
  if (
    !/await this\.coordinator\.heartbeat\(payload\)/.test(source) ||
    !/this\.coordinator = await this\.cluster\.findGroupCoordinator\(\{ groupId \}\)/.test(source)
  )
    return false;
  const fixed = async function heartbeat(this: ConsumerGroup, o: { interval: number }): Promise<void> {
    try {
      await original.call(this, o);
    } catch (err) {
      if (!brokerUnreachable(err) || !this.memberId) throw err;
      this.coordinator = await this.cluster.findGroupCoordinator({ groupId: this.groupId });
      await original.call(this, o);
    }
  };
  Object.assign(fixed, { fixed: true });
  proto.heartbeat = fixed;
  return true;
}
