import { createRequire } from 'node:module';

interface ConsumerGroup {
  groupId: string;
  joinAndSync(): Promise<unknown>;
}

/** What runs before a member of a group (re)joins it; settles when the member may let its partitions go. */
export type BeforeJoin = () => Promise<void>;

const hooks = new Map<string, Set<BeforeJoin>>();

/**
 * Registers `hook` to run before every join of `groupId` by a consumer of this process (the first join, each rejoin
 * after a rebalance, and the join of a member kafkajs restarted); returns its removal. kafkajs 2.2.4 has no
 * rebalance listener (the Java client's `onPartitionsRevoked`): a member whose work outlives a fetched batch needs
 * one, to finish that work and commit it before its partitions can move to another member. Members of one group
 * rebalance together, so a hook runs for the joins of any member of its group in this process.
 */
export function beforeGroupJoin(groupId: string, hook: BeforeJoin): () => void {
  let set = hooks.get(groupId);
  if (!set) hooks.set(groupId, (set = new Set()));
  set.add(hook);
  return () => {
    set.delete(hook);
    if (set.size === 0 && hooks.get(groupId) === set) hooks.delete(groupId);
  };
}

/**
 * Runs the hooks of {@link beforeGroupJoin} at the start of kafkajs's `ConsumerGroup#joinAndSync`, the one method
 * every join goes through (the runner's first join, its rejoin after REBALANCE_IN_PROGRESS or UNKNOWN_MEMBER_ID, the
 * group's own after stale metadata). A hook that fails is logged by its owner, never here: the join goes on.
 * Applied once, only to the code it was written for.
 */
export function runHooksBeforeJoin(): boolean {
  const require = createRequire(import.meta.url);
  const Group = require('kafkajs/src/consumer/consumerGroup.js') as { prototype: ConsumerGroup };
  const Runner = require('kafkajs/src/consumer/runner.js') as { toString(): string };
  const proto = Group.prototype;
  const original = proto.joinAndSync;
  if ((original as { hooked?: boolean }).hooked) return true;
  // The known shape: join then sync in joinAndSync, and the runner rejoining through it after a rebalance.
  if (
    !/await this\[PRIVATE\.JOIN\]\(\)\s+await this\[PRIVATE\.SYNC\]\(\)/.test(original.toString()) ||
    !/if \(isRebalancing\(e\)\) \{[\s\S]{0,600}await this\.consumerGroup\.joinAndSync\(\)/.test(
      Runner.toString(),
    )
  )
    return false;
  const hooked = async function joinAndSync(this: ConsumerGroup): Promise<unknown> {
    const set = hooks.get(this.groupId);
    if (set?.size) await Promise.all([...set].map((h) => h().catch(() => undefined)));
    return original.call(this);
  };
  (hooked as { hooked?: boolean }).hooked = true;
  proto.joinAndSync = hooked;
  return true;
}
