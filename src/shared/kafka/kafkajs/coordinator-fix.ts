import { createRequire } from 'node:module';
import { isCoordinatorMoving } from '../errors.js';

interface GroupCoordinator {
  heartbeat(payload: object): Promise<unknown>;
}

interface ConsumerGroup {
  groupId: string;
  memberId: string | null;
  sessionTimeout: number;
  /** When the last heartbeat was answered (kafkajs also sets it at the join). */
  lastRequest: number;
  coordinator: GroupCoordinator | null;
  cluster: { findGroupCoordinator(o: { groupId: string }): Promise<GroupCoordinator> };
  heartbeat(o: { interval: number }): Promise<void>;
}

/**
 * kafkajs 2.2.4 looks the group coordinator up only when it joins: when the coordinator's broker dies (kill -9),
 * every heartbeat goes on failing against the dead address until kafkajs's retries run out (about 10 s), and it then
 * crashes and joins again as a NEW member, which rebalances the whole group (the scheduler group's members lost
 * every state partition for 15-20 s after such a kill). The group's state lives on in `__consumer_offsets`, and the
 * broker that takes that partition over knows the member: a heartbeat that cannot reach the coordinator asks the
 * cluster which broker coordinates the group now (kafkajs retries that until one answers) and heartbeats there with
 * the same member id and generation.
 *
 * The move itself takes a while: the dead broker is named as coordinator until the controller fences it (1-3 s on
 * kafka-local, longer with default settings), then the new one answers NOT_COORDINATOR and
 * COORDINATOR_LOAD_IN_PROGRESS while it loads the group. A heartbeat that fails with one of those while the member's
 * session is still running (since the last answered heartbeat) is skipped: the member keeps its place, since the new
 * coordinator gives every member it loads a fresh session, and the next heartbeat looks the coordinator up again.
 * Before, such a heartbeat crashed the consumer and it joined again as a new member (a rebalance of the whole
 * scheduler group about 1.5 s after a kill). Past the session, kafkajs gets the error as before. Applied once, only
 * to the code it was written for.
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
    !/this\.coordinator = await this\.cluster\.findGroupCoordinator\(\{ groupId \}\)/.test(source) ||
    // The session it keeps: the time of the last answered heartbeat, and the session timeout it joined with.
    !/await this\.coordinator\.heartbeat\(payload\)[\s\S]{0,120}this\.lastRequest = Date\.now\(\)/.test(
      source,
    ) ||
    !/const \{ groupId, sessionTimeout, rebalanceTimeout \} = this/.test(source)
  )
    return false;
  const fixed = async function heartbeat(this: ConsumerGroup, o: { interval: number }): Promise<void> {
    try {
      await original.call(this, o);
    } catch (err) {
      if (!isCoordinatorMoving(err) || !this.memberId) throw err;
      try {
        this.coordinator = await this.cluster.findGroupCoordinator({ groupId: this.groupId });
        await original.call(this, o);
      } catch (again) {
        if (isCoordinatorMoving(again) && Date.now() - this.lastRequest < this.sessionTimeout) return;
        throw again;
      }
    }
  };
  Object.assign(fixed, { fixed: true });
  proto.heartbeat = fixed;
  return true;
}
