/**
 * How long Kafka may stay silent before a process reports not ready: no heartbeat answered by the group coordinator
 * (scheduler instances, consumers), no metadata probe answered (taskapi). Long enough for a heartbeat or two to be
 * late, short enough for a load balancer or an operator to see a broker that is gone within seconds.
 */
export const KAFKA_SILENT_MS = 5000;

/** A group member's view of its membership (see GroupConsumer.health). */
export interface MembershipHealth {
  /** In the group now (joined, and not crashed, stopped or disconnected since). */
  joined: boolean;
  /** When the coordinator last answered a heartbeat (or the join), epoch ms. */
  lastHeartbeatAt: number | undefined;
}

/**
 * The readiness rule of every consumer-group member (a scheduler instance, a task consumer): it is in its group and
 * the coordinator answered it within {@link KAFKA_SILENT_MS} (or `maxSilentMs`). Returns what is missing, or undefined when nothing is.
 * `group` names the group for the reason, e.g. `consumer group taskConsumer`.
 */
export function membershipProblem(
  health: MembershipHealth,
  nowMs: number,
  group: string,
  /** How long the coordinator may stay silent. */
  maxSilentMs = KAFKA_SILENT_MS,
): string | undefined {
  if (!health.joined) return `not in ${group} (joining)`;
  const silentMs = nowMs - (health.lastHeartbeatAt ?? 0);
  if (silentMs > maxSilentMs)
    return `no answer from the group coordinator for ${Math.round(silentMs / 1000)} s (broker unreachable?)`;
  return undefined;
}
