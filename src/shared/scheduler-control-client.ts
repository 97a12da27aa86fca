import { randomUUID } from 'node:crypto';
import { actor } from './actor.js';
import {
  controlRequestRecord,
  COMMANDS_TOPIC,
  decodeControlRecord,
  ReplyJoiner,
} from './codecs/scheduler-control.js';
import type { ControlReply, ControlRequest } from './codecs/scheduler-control.js';
import type { Follower, KafkaClient, KafkaProducer } from './kafka/index.js';

/** What a sender says in a request: the rest (id, by, at) is filled in. */
export type ControlSend = Pick<ControlRequest, 'type' | 'group' | 'scheduleIds' | 'backfill'>;

export interface ControlResult {
  replies: ControlReply[];
  /** status: state partitions no instance answered for. */
  unanswered: number[];
  timedOut: boolean;
}

/**
 * Sends commands to scheduler groups and collects their answers over one long-lived follower and producer: the
 * first answer for trigger, pause and resume; for status, answers until every state partition is covered (or the
 * timeout). `taskapi` keeps one; the CLI makes one per command (see {@link sendControl}).
 */
export class ControlClient {
  private follower: Follower | undefined;
  private producer: KafkaProducer | undefined;
  private readonly pending = new Map<string, (reply: ControlReply) => void>();
  private readonly joiner = new ReplyJoiner();

  constructor(private readonly kafka: KafkaClient) {}

  async start(): Promise<void> {
    this.follower = await this.kafka.follow(COMMANDS_TOPIC, (r) => {
      const read = decodeControlRecord(r.value);
      if (read.kind !== 'reply' || !this.pending.has(read.reply.replyTo)) return;
      const reply = this.joiner.add(read.reply);
      if (reply) this.pending.get(read.reply.replyTo)?.(reply);
    });
    this.producer = this.kafka.producer({ idempotent: true, retries: 3 });
    await this.producer.connect();
  }

  async stop(): Promise<void> {
    await this.producer?.disconnect().catch(() => undefined);
    await this.follower?.stop();
  }

  async send(
    c: ControlSend & { by?: string },
    { timeoutMs, statePartitions }: { timeoutMs: number; statePartitions: number },
  ): Promise<ControlResult> {
    const producer = this.producer;
    if (!producer) throw new Error('ControlClient.send before start');
    const command: ControlRequest = {
      v: 1,
      kind: 'command',
      id: randomUUID(),
      type: c.type,
      group: c.group,
      ...(c.scheduleIds ? { scheduleIds: c.scheduleIds } : {}),
      ...(c.backfill ? { backfill: c.backfill } : {}),
      by: c.by ?? actor(),
      at: new Date().toISOString(),
    };
    const replies: ControlReply[] = [];
    const covered = new Set<number>();
    let timer: NodeJS.Timeout | undefined;
    let timedOut = false;
    try {
      await new Promise<void>((resolve, reject) => {
        this.pending.set(command.id, (reply) => {
          replies.push(reply);
          for (const p of reply.partitions ?? []) covered.add(p);
          if (c.type !== 'status' || covered.size >= statePartitions) resolve();
        });
        timer = setTimeout(() => {
          timedOut = true;
          resolve();
        }, timeoutMs);
        producer.send([controlRequestRecord(command)]).catch(reject);
      });
    } finally {
      clearTimeout(timer);
      this.pending.delete(command.id);
      this.joiner.forget(command.id);
    }
    const unanswered = Array.from({ length: statePartitions }, (_, p) => p).filter((p) => !covered.has(p));
    return { replies, unanswered, timedOut };
  }
}

/** One command from the CLI: a client for just this command. */
export async function sendControl(
  kafka: KafkaClient,
  c: ControlSend,
  options: { timeoutMs: number; statePartitions: number },
): Promise<ControlResult> {
  const client = new ControlClient(kafka);
  try {
    await client.start();
    return await client.send(c, options);
  } finally {
    await client.stop();
  }
}
