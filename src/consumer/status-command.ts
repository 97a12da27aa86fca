import type { GroupStatus, KafkaClient } from '../shared/kafka/index.js';
import { textTable } from '../shared/text-table.js';

/** `taskconsumer status`: the group's members, who holds which partition, and the lag of each. */
export async function consumerGroupStatus(
  kafka: KafkaClient,
  group: string,
  topics: string[],
): Promise<{ status: GroupStatus; lines: string[] }> {
  const status = await kafka.groupStatus(group, topics);
  const totalLag = status.partitions.reduce((n, p) => n + p.lag, 0n);
  const lines = [
    `consumer group ${group}: ${status.state}, ${status.members.length} member(s), lag ${totalLag} on ${topics.join(', ')}`,
    ...status.members.map(
      (m) =>
        `  ${m.clientId} ${m.host}: ` +
        (Object.entries(m.assignment)
          .map(([t, ps]) => `${t} [${[...ps].sort((a, b) => a - b).join(',')}]`)
          .join(' ') || 'no partitions'),
    ),
    '',
    ...textTable(
      ['TOPIC', 'PARTITION', 'OWNER', 'COMMITTED', 'END', 'LAG'],
      status.partitions.map((p) => [
        p.topic,
        String(p.partition),
        p.owner ?? '-',
        p.committed === undefined ? '-' : String(p.committed),
        String(p.end),
        String(p.lag),
      ]),
    ),
  ];
  return { status, lines };
}
