import { membershipProblem } from '../shared/kafka/index.js';
import type { MembershipHealth } from '../shared/kafka/index.js';

/**
 * Whether a member is in its group and its coordinator answered a heartbeat lately (the rule of every member), or,
 * with `maxSilentMs`, within that long.
 */
export function inGoodStanding(
  health: MembershipHealth,
  nowMs: number,
  group: string,
  maxSilentMs?: number,
): boolean {
  return membershipProblem(health, nowMs, group, maxSilentMs) === undefined;
}

/** What `/ready` and `taskscheduler status` say about one instance (a type, not an interface: it is a `Readiness`). */
export type SchedulerReadiness = {
  ready: boolean;
  reason: string;
  group: string;
  assigned: number[];
  active: number[];
};

/**
 * A scheduler instance is ready when it is in its group and fires everything it was given: joined, heard from
 * its coordinator lately, and every assigned state partition taken over (fenced, state read, armed) and
 * publishing. `reason` names the first thing missing.
 */
export function schedulerReadiness(s: {
  group: string;
  stopping: boolean;
  /** This instance saw a join, and its consumer is a member now. */
  joined: boolean;
  health: MembershipHealth;
  nowMs: number;
  assigned: number[];
  active: number[];
  failing: number[];
}): SchedulerReadiness {
  const { assigned, active, failing } = s;
  const membership = membershipProblem(
    { ...s.health, joined: s.joined && s.health.joined },
    s.nowMs,
    `scheduler group ${s.group}`,
  );
  let reason = 'ok';
  if (s.stopping) reason = 'stopping';
  else if (membership) reason = membership;
  else if (active.length < assigned.length)
    reason = `taking over state partitions [${assigned.filter((p) => !active.includes(p)).join(',')}]`;
  else if (failing.length > 0) reason = `cannot publish fires of state partitions [${failing.join(',')}]`;
  return { ready: reason === 'ok', reason, group: s.group, assigned, active };
}
