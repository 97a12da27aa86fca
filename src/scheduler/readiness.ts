/** Without a heartbeat answered for this long, the instance reports not ready (broker or coordinator gone). */
export const HEARTBEAT_STALE_MS = 5000;

/** A group member's membership as its consumer sees it. */
export interface MemberHealth {
  joined: boolean;
  lastHeartbeatAt: number | undefined;
}

/** Whether a member is in its group and its coordinator answered a heartbeat lately. */
export function inGoodStanding(health: MemberHealth, nowMs: number): boolean {
  return health.joined && nowMs - (health.lastHeartbeatAt ?? 0) <= HEARTBEAT_STALE_MS;
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
  health: MemberHealth;
  nowMs: number;
  assigned: number[];
  active: number[];
  failing: number[];
}): SchedulerReadiness {
  const { assigned, active, failing } = s;
  const silentMs = s.nowMs - (s.health.lastHeartbeatAt ?? 0);
  let reason = 'ok';
  if (s.stopping) reason = 'stopping';
  else if (!s.joined || !s.health.joined) reason = `not in scheduler group ${s.group} (joining)`;
  else if (silentMs > HEARTBEAT_STALE_MS)
    reason = `no answer from the group coordinator for ${Math.round(silentMs / 1000)} s (broker unreachable?)`;
  else if (active.length < assigned.length)
    reason = `taking over state partitions [${assigned.filter((p) => !active.includes(p)).join(',')}]`;
  else if (failing.length > 0) reason = `cannot publish fires of state partitions [${failing.join(',')}]`;
  return { ready: reason === 'ok', reason, group: s.group, assigned, active };
}
