import { hostname } from 'node:os';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import {
  COMMANDS_TOPIC,
  CONTROL_ACTIONS,
  decodeControlRecord,
  replyRecords,
} from '../shared/codecs/scheduler-control.js';
import type { ControlReply, ControlRequest } from '../shared/codecs/scheduler-control.js';
import type { Follower, InRecord, KafkaClient, KafkaProducer } from '../shared/kafka/index.js';
import type { GroupScheduler } from './group-scheduler.js';

/** A reply without what the listener adds to every one. */
type Answer = Omit<ControlReply, 'v' | 'kind' | 'replyTo' | 'group' | 'from'>;

/**
 * Runs in every `taskscheduler`: follows `taskmanager.commands` and answers the commands of its group that are
 * its to answer: trigger, pause, resume and backfill by the owner of the entry's state partition, status by everyone.
 */
export class ControlListener {
  private follower: Follower | undefined;
  private readonly producer: KafkaProducer;
  private readonly from = { host: hostname(), pid: process.pid };

  constructor(
    private readonly kafka: KafkaClient,
    private readonly scheduler: GroupScheduler,
    private readonly logger: Logger,
  ) {
    this.producer = kafka.producer({ idempotent: true });
  }

  async start(): Promise<void> {
    await this.producer.connect();
    this.follower = await this.kafka.follow(COMMANDS_TOPIC, (r) => {
      void this.handle(r).catch((err: unknown) =>
        this.logger.error(
          `command at ${COMMANDS_TOPIC}/${r.partition}@${r.offset} failed: ${errorMessage(err)}`,
        ),
      );
    });
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
    await this.producer.disconnect().catch(() => undefined);
  }

  private async handle(r: InRecord): Promise<void> {
    const read = decodeControlRecord(r.value);
    if (read.kind === 'reply' || read.kind === 'stray-reply') return;
    if (read.kind === 'invalid') {
      this.logger.warn(
        `ignoring record ${COMMANDS_TOPIC}/${r.partition}@${r.offset}: not a command (${read.why})`,
      );
      return;
    }
    const data = read.command;
    if (data.group !== this.scheduler.group) return;
    const answer =
      read.kind === 'unknown-type' ? this.refuseUnknown(read.command) : await this.answer(read.command);
    if (!answer) return;
    const reply: ControlReply = {
      v: 1,
      kind: 'reply',
      replyTo: data.id,
      group: data.group,
      from: this.from,
      ...answer,
    };
    // One request per part: a record batch (not only a record) must stay under the broker's size limit.
    for (const part of replyRecords(reply)) await this.producer.send([part]);
  }

  /**
   * A request of a type this version does not know (sent by a newer one): refused by name, by the owner of its one
   * entry (or by every instance when it names none), so that its sender is told rather than left waiting.
   */
  private refuseUnknown(c: { type: string; scheduleIds?: string[]; by: string }): Answer | undefined {
    const id = c.scheduleIds?.length === 1 ? c.scheduleIds[0] : undefined;
    if (id !== undefined && !this.scheduler.answersFor(id)) return undefined;
    this.logger.warn(
      `refusing command ${JSON.stringify(c.type)} from ${c.by}: not a type this version knows`,
    );
    return {
      ok: false,
      code: 'USAGE',
      message:
        `this instance does not know command ${JSON.stringify(c.type)} (it knows ${CONTROL_ACTIONS.join(', ')}): ` +
        `upgrade the instances of group ${this.scheduler.group}`,
    };
  }

  /** The answer, or undefined when another instance answers. */
  private async answer(c: ControlRequest): Promise<Answer | undefined> {
    if (c.type === 'status') {
      const r = this.scheduler.readiness();
      const entries = this.scheduler.status(c.scheduleIds);
      const apiDefinitions = this.scheduler.apiDefinitions;
      return { ok: r.ready, message: r.reason, partitions: r.active, entries, apiDefinitions };
    }
    const id = c.scheduleIds?.[0];
    if (id === undefined || c.scheduleIds?.length !== 1)
      return { ok: false, message: `${c.type} needs one schedule Id` };
    if (!this.scheduler.answersFor(id)) return undefined;
    this.logger.info(`command ${c.type} ${id} from ${c.by}`, { commandId: c.id });
    try {
      if (c.type === 'trigger') return await this.scheduler.trigger(id);
      if (c.type === 'backfill')
        return c.backfill
          ? await this.scheduler.backfill(id, c.backfill, c.by)
          : { ok: false, code: 'USAGE', message: 'backfill needs a range (from, to)' };
      return await this.scheduler.setPaused(id, c.type === 'pause', c.by);
    } catch (err) {
      return { ok: false, message: `${c.type} ${id} failed: ${errorMessage(err)}` };
    }
  }
}
