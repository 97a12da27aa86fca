import { AssignerProtocol } from 'kafkajs';
import type { Admin, Kafka } from 'kafkajs';

export interface GroupMember {
  memberId: string;
  clientId: string;
  host: string;
  /** topic → partitions assigned to this member. */
  assignment: Record<string, number[]>;
}

export interface PartitionLag {
  topic: string;
  partition: number;
  /** Next offset the group will read; undefined when it never committed on this partition. */
  committed: bigint | undefined;
  end: bigint;
  /** Records not yet processed (end minus committed, or minus the log start when nothing is committed). */
  lag: bigint;
  owner: string | undefined;
}

export interface GroupStatus {
  groupId: string;
  /** Kafka's group state: Stable, PreparingRebalance, CompletingRebalance, Empty, Dead. */
  state: string;
  members: GroupMember[];
  partitions: PartitionLag[];
}

type DescribedGroup = Awaited<ReturnType<Admin['describeGroups']>>['groups'][number];

function membersOf(g: DescribedGroup | undefined): GroupMember[] {
  return (g?.members ?? []).map((m) => {
    const decoded =
      m.memberAssignment.length > 0 ? AssignerProtocol.MemberAssignment.decode(m.memberAssignment) : null;
    return {
      memberId: m.memberId,
      clientId: m.clientId,
      host: m.clientHost,
      assignment: decoded?.assignment ?? {},
    };
  });
}

/** Every consumer group that has members now, with each member's assignment (groups without members left out). */
export async function activeGroups(
  kafka: Kafka,
): Promise<Array<{ groupId: string; state: string; members: GroupMember[] }>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ids = (await admin.listGroups()).groups
      .filter((g) => g.protocolType === 'consumer')
      .map((g) => g.groupId);
    if (ids.length === 0) return [];
    const { groups } = await admin.describeGroups(ids);
    return groups
      .filter((g) => g.members.length > 0)
      .map((g) => ({ groupId: g.groupId, state: g.state, members: membersOf(g) }))
      .sort((a, b) => a.groupId.localeCompare(b.groupId));
  } finally {
    await admin.disconnect();
  }
}

/** A consumer group's state and each member's assignment, as its coordinator has them now. */
export async function groupMembers(
  kafka: Kafka,
  groupId: string,
): Promise<{ state: string; members: GroupMember[] }> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    return { state: groups[0]?.state ?? 'Dead', members: membersOf(groups[0]) };
  } finally {
    await admin.disconnect();
  }
}

/** Members, assignment and lag per partition of a consumer group on `topics`, from the admin API. */
export async function describeGroup(kafka: Kafka, groupId: string, topics: string[]): Promise<GroupStatus> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const { groups } = await admin.describeGroups([groupId]);
    const g = groups[0];
    const members = membersOf(g);
    const ownerOf = new Map<string, string>();
    for (const m of members)
      for (const [t, ps] of Object.entries(m.assignment))
        for (const p of ps) ownerOf.set(`${t}/${p}`, `${m.clientId} ${m.host}`);
    const committed = await admin.fetchOffsets({ groupId, topics });
    const partitions: PartitionLag[] = [];
    for (const topic of topics) {
      const ends = await admin.fetchTopicOffsets(topic);
      const done = new Map(
        (committed.find((c) => c.topic === topic)?.partitions ?? []).map((p) => [
          p.partition,
          BigInt(p.offset),
        ]),
      );
      for (const e of ends.sort((a, b) => a.partition - b.partition)) {
        const c = done.get(e.partition);
        const at = c !== undefined && c >= 0n ? c : undefined;
        const end = BigInt(e.high);
        const from = at ?? BigInt(e.low);
        partitions.push({
          topic,
          partition: e.partition,
          committed: at,
          end,
          lag: end > from ? end - from : 0n,
          owner: ownerOf.get(`${topic}/${e.partition}`),
        });
      }
    }
    return { groupId, state: g?.state ?? 'Dead', members, partitions };
  } finally {
    await admin.disconnect();
  }
}
