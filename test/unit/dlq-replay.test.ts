import Fastify from 'fastify';
import { describe, expect, it } from 'vitest';
import '../../src/api/auth/guard.js';
import { registerDlqRoutes } from '../../src/api/routes-dlq.js';
import { listDlq, replayDlq } from '../../src/shared/dlq-replay.js';
import { dlqRecord } from '../../src/shared/codecs/dlq-record.js';
import type { InRecord, KafkaClient, OutRecord } from '../../src/shared/kafka/index.js';

/** Topics in memory, as much of a KafkaClient as a replay uses: list topics, read one to its end, write in a transaction. */
function memoryKafka(): { kafka: KafkaClient; logs: Map<string, InRecord[]>; add(r: OutRecord): InRecord } {
  const logs = new Map<string, InRecord[]>();
  const add = (r: OutRecord): InRecord => {
    const log = logs.get(r.topic) ?? [];
    logs.set(r.topic, log);
    const rec: InRecord = {
      topic: r.topic,
      partition: r.partition ?? 0,
      offset: String(log.length),
      key: r.key === null ? null : Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      headers: { ...r.headers },
      timestamp: '0',
    };
    log.push(rec);
    return rec;
  };
  const kafka = {
    existingTopics: async (topics: string[]) => new Set(topics.filter((t) => logs.has(t))),
    readToEnd: async (topic: string) => [...(logs.get(topic) ?? [])],
    producer: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      sendInTransaction: async (records: readonly OutRecord[]) => void records.forEach(add),
    }),
  } as unknown as KafkaClient;
  return { kafka, logs, add };
}

/** A task that failed on `topic` and was dead-lettered by the consumer, as `orders.dlq` holds it. */
function deadLettered(m: ReturnType<typeof memoryKafka>, topic: string, taskId: string): InRecord {
  const failed: InRecord = {
    topic,
    partition: 3,
    offset: '41',
    key: Buffer.from(taskId.split('@')[0]!),
    value: Buffer.from(JSON.stringify({ taskId })),
    headers: { 'task-id': taskId },
    timestamp: '0',
  };
  return m.add({ ...dlqRecord(failed, 'non-retriable', 'boom', 1, 0), topic: 'orders.dlq' });
}

describe('when a DLQ record names another topic as its origin', () => {
  it('should replay only to the DLQ’s own task topic, refuse the other with a line naming it, and leave it waiting', async () => {
    const m = memoryKafka();
    m.logs.set('orders', []);
    const own = deadLettered(m, 'orders', 'a@2026-11-22T10:00:00.000Z');
    // Planted: written straight into orders.dlq, its header aimed at the users topic.
    const planted = deadLettered(m, 'taskmanager.users', 'user:admin@2026-11-22T10:00:00.000Z');

    const outcome = await replayDlq(m.kafka, 'orders', { all: true });

    expect(m.logs.get('taskmanager.users') ?? []).toEqual([]);
    expect(m.logs.get('orders')?.map((r) => r.headers['task-id'])).toEqual(['a@2026-11-22T10:00:00.000Z']);
    expect(outcome.replayed.map((e) => e.offset)).toEqual([own.offset]);
    expect(outcome.refused.map((r) => r.line)).toEqual([
      `orders.dlq partition 0 offset ${planted.offset}: not replayed: its dlq-original-topic header names taskmanager.users, but orders.dlq replays only to orders (the record stays in the DLQ)`,
    ]);
    const after = await listDlq(m.kafka, 'orders');
    expect(after.find((e) => e.offset === planted.offset)?.replayedBy).toBeUndefined();
    expect(after.find((e) => e.offset === own.offset)?.replayedBy).toMatch(/^\d+@\d+$/);
  });

  it('should write nothing when the one record asked for is refused', async () => {
    const m = memoryKafka();
    const planted = deadLettered(m, 'connect-configs', 'x@2026-11-22T10:00:00.000Z');
    const before = m.logs.get('orders.dlq')!.length;

    const outcome = await replayDlq(m.kafka, 'orders', { position: `0@${planted.offset}` });

    expect([...m.logs.keys()]).toEqual(['orders.dlq']);
    expect(m.logs.get('orders.dlq')).toHaveLength(before);
    expect([outcome.replayed.length, outcome.refused.length]).toEqual([0, 1]);
  });
});

describe('when an operator replays all from the dashboard or the API', () => {
  it('should answer what was refused and why, beside what was replayed', async () => {
    const m = memoryKafka();
    m.logs.set('orders', []);
    deadLettered(m, 'orders', 'a@2026-11-22T10:00:00.000Z');
    const planted = deadLettered(m, 'taskmanager.users', 'user:admin@2026-11-22T10:00:00.000Z');
    const audit: string[] = [];
    const app = Fastify();
    app.decorateRequest('principal', null);
    app.addHook('onRequest', async (req) => {
      req.principal = { user: 'olga', role: 'operator', via: 'jwt' };
    });
    registerDlqRoutes(app, m.kafka, (what, user) => audit.push(`${what} by ${user}`));

    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/dlq/orders/replay',
      payload: { all: true },
    });

    expect(res.statusCode).toBe(200);
    const body = res.json<{ replayed: unknown[]; refused: Array<Record<string, string>> }>();
    expect(body.replayed).toHaveLength(1);
    expect(body.refused).toEqual([
      {
        position: `0@${planted.offset}`,
        taskId: 'user:admin@2026-11-22T10:00:00.000Z',
        originalTopic: 'taskmanager.users',
        detail: expect.stringContaining('names taskmanager.users, but orders.dlq replays only to orders'),
      },
    ]);
    expect(audit.filter((a) => a.includes('not replayed'))).toHaveLength(1);
    await app.close();
  });
});
