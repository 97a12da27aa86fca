import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { COMMANDS_TOPIC } from '../shared/messages.js';
import type { Follower, InRecord, KafkaClient, KafkaProducer } from '../shared/kafka/index.js';
import type { CommandOutcome, EntryStatus, GroupScheduler } from './group-scheduler.js';

export type CommandType = 'trigger' | 'pause' | 'resume' | 'status';

/** A request on `taskmanager.commands` (key = group), answered by the instances of that scheduler group. */
export interface SchedulerCommand {
  v: 1;
  kind: 'command';
  id: string;
  type: CommandType;
  group: string;
  /** trigger, pause, resume: the entry; status: only these entries (all when absent). */
  scheduleIds?: string[];
  /** `user@host` of whoever sent it. */
  by: string;
  at: string;
}

/** An answer on `taskmanager.commands` (key = group). */
export interface CommandReply extends CommandOutcome {
  v: 1;
  /** `reply-part`: one of the `parts` records of a reply too large for one (older clients ignore it). */
  kind: 'reply' | 'reply-part';
  replyTo: string;
  group: string;
  from: { host: string; pid: number };
  /** status: the state partitions the answering instance owns, and their entries. */
  partitions?: number[];
  entries?: EntryStatus[];
  /**
   * A status reply too large for one record comes as `parts` records of kind `reply-part` (numbered from 0 by
   * `part`, in order on one partition), each with a slice of `entries`; the client joins them into one reply.
   */
  part?: number;
  parts?: number;
}

/** A reply record's size goal: well under the broker's default 1 MiB per record batch. */
export const REPLY_PART_BYTES = 256 * 1024;

/**
 * The records of one reply: one when it fits in `maxBytes`, otherwise its entries sliced into parts of about
 * `maxBytes` each (an entry is never split).
 */
export function replyParts(reply: CommandReply, maxBytes = REPLY_PART_BYTES): CommandReply[] {
  const whole = JSON.stringify(reply);
  const entries = reply.entries ?? [];
  if (Buffer.byteLength(whole) <= maxBytes || entries.length < 2) return [reply];
  const base = Buffer.byteLength(JSON.stringify({ ...reply, entries: [], part: 0, parts: 0 }));
  const slices: EntryStatus[][] = [[]];
  let size = base;
  for (const e of entries) {
    const n = Buffer.byteLength(JSON.stringify(e)) + 1;
    const slice = slices[slices.length - 1]!;
    if (slice.length > 0 && size + n > maxBytes) {
      slices.push([e]);
      size = base + n;
    } else {
      slice.push(e);
      size += n;
    }
  }
  return slices.map((slice, part) => ({
    ...reply,
    kind: 'reply-part',
    entries: slice,
    part,
    parts: slices.length,
  }));
}

/** Joins the parts of replies (see {@link replyParts}); a reply of one record passes through. */
export class ReplyJoiner {
  private readonly partial = new Map<string, CommandReply[]>();

  /** The whole reply once its last part is in, else undefined. */
  add(r: CommandReply): CommandReply | undefined {
    if (r.kind === 'reply') return r;
    const { part, parts } = r;
    // A part that does not say which of how many, or from whom, is no part of anything.
    if (
      typeof part !== 'number' ||
      typeof parts !== 'number' ||
      !Number.isInteger(part) ||
      part < 0 ||
      part >= parts ||
      typeof r.from?.host !== 'string'
    )
      return undefined;
    const key = `${r.replyTo} ${r.from.host} ${r.from.pid}`;
    const got = this.partial.get(key) ?? [];
    got[part] = r;
    this.partial.set(key, got);
    if (got.filter(Boolean).length < parts) return undefined;
    this.partial.delete(key);
    const { part: _part, parts: _parts, ...first } = got[0]!;
    return { ...first, kind: 'reply', entries: got.flatMap((x) => x.entries ?? []) };
  }

  /** Forgets the parts of replies to a command no longer waited for. */
  forget(replyTo: string): void {
    for (const key of this.partial.keys()) if (key.startsWith(`${replyTo} `)) this.partial.delete(key);
  }
}

const ajv = new Ajv({ strict: true, allowUnionTypes: true });
const commandSchema: JSONSchemaType<SchedulerCommand> = {
  type: 'object',
  required: ['v', 'kind', 'id', 'type', 'group', 'by', 'at'],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'command' },
    id: { type: 'string', minLength: 1 },
    type: { type: 'string', enum: ['trigger', 'pause', 'resume', 'status'] },
    group: { type: 'string', minLength: 1 },
    scheduleIds: { type: 'array', items: { type: 'string' }, nullable: true },
    by: { type: 'string' },
    at: { type: 'string' },
  },
};
const isCommand = ajv.compile(commandSchema);

function parseJson(r: InRecord): unknown {
  try {
    return JSON.parse(r.value?.toString('utf8') ?? 'null');
  } catch {
    return undefined;
  }
}

/** `user@host` of this process, for the audit trail of pause and resume. */
export function actor(): string {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (some containers)
  }
  return `${user}@${hostname()}`;
}

/**
 * Runs in every `taskscheduler`: follows `taskmanager.commands` and answers the commands of its group that are
 * its to answer: trigger, pause and resume by the owner of the entry's state partition, status by everyone.
 */
export class CommandListener {
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
    const data = parseJson(r);
    if (
      typeof data === 'object' &&
      data !== null &&
      ['reply', 'reply-part'].includes((data as { kind?: unknown }).kind as string)
    )
      return;
    if (!isCommand(data)) {
      this.logger.warn(
        `ignoring record ${COMMANDS_TOPIC}/${r.partition}@${r.offset}: not a command ` +
          `(${ajv.errorsText(isCommand.errors)})`,
      );
      return;
    }
    if (data.group !== this.scheduler.group) return;
    const answer = await this.answer(data);
    if (!answer) return;
    const reply: CommandReply = {
      v: 1,
      kind: 'reply',
      replyTo: data.id,
      group: data.group,
      from: this.from,
      ...answer,
    };
    // One request per part: a record batch (not only a record) must stay under the broker's size limit.
    for (const part of replyParts(reply))
      await this.producer.send([{ topic: COMMANDS_TOPIC, key: data.group, value: JSON.stringify(part) }]);
  }

  /** The answer, or undefined when another instance answers. */
  private async answer(
    c: SchedulerCommand,
  ): Promise<Omit<CommandReply, 'v' | 'kind' | 'replyTo' | 'group' | 'from'> | undefined> {
    if (c.type === 'status') {
      const r = this.scheduler.readiness();
      const entries = this.scheduler.status(c.scheduleIds);
      return { ok: r.ready, message: r.reason, partitions: r.active, entries };
    }
    const id = c.scheduleIds?.[0];
    if (id === undefined || c.scheduleIds?.length !== 1)
      return { ok: false, message: `${c.type} needs one schedule Id` };
    if (!this.scheduler.answersFor(id)) return undefined;
    this.logger.info(`command ${c.type} ${id} from ${c.by}`, { commandId: c.id });
    try {
      if (c.type === 'trigger') return await this.scheduler.trigger(id);
      return await this.scheduler.setPaused(id, c.type === 'pause', c.by);
    } catch (err) {
      return { ok: false, message: `${c.type} ${id} failed: ${errorMessage(err)}` };
    }
  }
}

export interface CommandResult {
  replies: CommandReply[];
  /** status: state partitions no instance answered for. */
  unanswered: number[];
  timedOut: boolean;
}

/**
 * Sends commands to scheduler groups and collects their answers over one long-lived follower and producer: the
 * first answer for trigger, pause and resume; for status, answers until every state partition is covered (or the
 * timeout). `taskapi` keeps one; the CLI makes one per command (see {@link sendCommand}).
 */
export class CommandClient {
  private follower: Follower | undefined;
  private producer: KafkaProducer | undefined;
  private readonly pending = new Map<string, (reply: CommandReply) => void>();
  private readonly joiner = new ReplyJoiner();

  constructor(private readonly kafka: KafkaClient) {}

  async start(): Promise<void> {
    this.follower = await this.kafka.follow(COMMANDS_TOPIC, (r) => {
      const data = parseJson(r) as Partial<CommandReply> | undefined;
      if (
        (data?.kind !== 'reply' && data?.kind !== 'reply-part') ||
        typeof data.replyTo !== 'string' ||
        !this.pending.has(data.replyTo)
      )
        return;
      const reply = this.joiner.add(data as CommandReply);
      if (reply) this.pending.get(data.replyTo)?.(reply);
    });
    this.producer = this.kafka.producer({ idempotent: true, retries: 3 });
    await this.producer.connect();
  }

  async stop(): Promise<void> {
    await this.producer?.disconnect().catch(() => undefined);
    await this.follower?.stop();
  }

  async send(
    c: { type: CommandType; group: string; scheduleIds?: string[]; by?: string },
    { timeoutMs, statePartitions }: { timeoutMs: number; statePartitions: number },
  ): Promise<CommandResult> {
    const producer = this.producer;
    if (!producer) throw new Error('CommandClient.send before start');
    const command: SchedulerCommand = {
      v: 1,
      kind: 'command',
      id: randomUUID(),
      type: c.type,
      group: c.group,
      ...(c.scheduleIds ? { scheduleIds: c.scheduleIds } : {}),
      by: c.by ?? actor(),
      at: new Date().toISOString(),
    };
    const replies: CommandReply[] = [];
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
        producer
          .send([{ topic: COMMANDS_TOPIC, key: c.group, value: JSON.stringify(command) }])
          .catch(reject);
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
export async function sendCommand(
  kafka: KafkaClient,
  c: { type: CommandType; group: string; scheduleIds?: string[] },
  options: { timeoutMs: number; statePartitions: number },
): Promise<CommandResult> {
  const client = new CommandClient(kafka);
  try {
    await client.start();
    return await client.send(c, options);
  } finally {
    await client.stop();
  }
}
