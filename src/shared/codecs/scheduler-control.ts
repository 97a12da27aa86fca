import { Ajv } from 'ajv';
import type { JSONSchemaType } from 'ajv';
import type { ErrorCode } from '../errors.js';
import type { OutRecord } from '../kafka/types.js';
import type { BackfillRange, BackfillResult } from '../backfill.js';
import type { OverlapPolicy } from '../schedule/model.js';

/**
 * The records of `taskmanager.commands` (docs/messages-and-topics.md#commands, key = scheduler group): the control
 * requests that `taskscheduler trigger|pause|resume|status|backfill` and taskapi send to a scheduler group, and the instances'
 * replies (a reply too large for one record comes in parts). In the code they are "control" requests: "command"
 * names a CLI subcommand or the command processor; only the topic and the records' `kind` keep the wire's word.
 */

export const COMMANDS_TOPIC = 'taskmanager.commands';

export type ControlAction = 'trigger' | 'pause' | 'resume' | 'status' | 'backfill';

/**
 * The request types this version answers. `backfill` came after the others: an instance from before it ignores
 * one (it logs that the record is not a command) and the sender hears nothing; an instance from it on answers a
 * type it does not know with a refusal that names it (see {@link decodeControlRecord}).
 */
export const CONTROL_ACTIONS: readonly ControlAction[] = ['trigger', 'pause', 'resume', 'status', 'backfill'];

/** A request on `taskmanager.commands` (key = group), answered by the instances of that scheduler group. */
export interface ControlRequest {
  v: 1;
  kind: 'command';
  id: string;
  type: ControlAction;
  group: string;
  /** trigger, pause, resume, backfill: the entry; status: only these entries (all when absent). */
  scheduleIds?: string[];
  /** backfill: the range (absent in every other type). */
  backfill?: BackfillRange;
  /** `user@host` of whoever sent it. */
  by: string;
  at: string;
}

/** One entry as `taskscheduler status` shows it (from its owner). */
export interface EntryStatus extends ScheduleTimesShown {
  id: string;
  /** A schedule file's entry, or a task created over HTTP. */
  source: 'file' | 'api';
  /** The cron text, `once at …` or `every …`. */
  spec: string;
  timeZone: string;
  topic: string;
  processor: string;
  /** `ended`: past its EndAt or at its MaxRuns, it fires nothing more (absent in replies of older instances). */
  state: 'enabled' | 'paused' | 'disabled' | 'ended';
  partition: number;
  lastFiredAt?: string;
}

/** A schedule's next fires, jitter, active window and limit, as status and the API show them. */
export interface ScheduleTimesShown {
  /** The next nominal instants (those of the taskIds). */
  nextFireTimes: string[];
  /** Seconds, when the schedule has jitter (absent in replies of older instances). */
  jitter?: number;
  /** With jitter: when each of `nextFireTimes` is due (its instant plus its delay), in the same order. */
  nextDueTimes?: string[];
  /** The active window and limit, when set (StartAt, EndAt, MaxRuns), and with MaxRuns its runs so far (known
   * from the owner only). */
  startAt?: string;
  endAt?: string;
  maxRuns?: number;
  runCount?: number;
  /** Its exclusion calendars, when it names any (absent in replies of older instances). */
  calendars?: string[];
  /** Its overlap policy, when not the default `queue` (absent in replies of older instances). */
  overlap?: OverlapPolicy;
}

/** What a control request changed, in words for the CLI. */
export interface ControlOutcome {
  ok: boolean;
  message: string;
  /**
   * Why it failed: NOT_FOUND (no such entry in the group), CONFLICT (another instance owns it, or its state
   * forbids it: paused, disabled), USAGE (the request itself: a range in the future, too many or no instants, a
   * type this instance does not know).
   */
  code?: ErrorCode;
  taskId?: string;
  /** backfill: what the owner published (or would), and what it left alone. */
  backfill?: BackfillResult;
}

/** An answer on `taskmanager.commands` (key = group). */
export interface ControlReply extends ControlOutcome {
  v: 1;
  /** `reply-part`: one of the `parts` records of a reply too large for one (older clients ignore it). */
  kind: 'reply' | 'reply-part';
  replyTo: string;
  group: string;
  from: { host: string; pid: number };
  /** status: the state partitions the answering instance owns, and their entries. */
  partitions?: number[];
  entries?: EntryStatus[];
  /** status: how many task definitions created over HTTP the instance holds (those of its state partitions). */
  apiDefinitions?: number;
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
export function replyParts(reply: ControlReply, maxBytes = REPLY_PART_BYTES): ControlReply[] {
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
  private readonly partial = new Map<string, ControlReply[]>();

  /** The whole reply once its last part is in, else undefined. */
  add(r: ControlReply): ControlReply | undefined {
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

  /** Forgets the parts of replies to a request no longer waited for. */
  forget(replyTo: string): void {
    for (const key of this.partial.keys()) if (key.startsWith(`${replyTo} `)) this.partial.delete(key);
  }
}

/** A control request as its record (key = its group). */
export function controlRequestRecord(c: ControlRequest): OutRecord {
  return { topic: COMMANDS_TOPIC, key: c.group, value: JSON.stringify(c) };
}

/** The records of a reply (key = its group): one, or its parts (see {@link replyParts}), in order. */
export function replyRecords(reply: ControlReply, maxBytes = REPLY_PART_BYTES): OutRecord[] {
  return replyParts(reply, maxBytes).map((part) => ({
    topic: COMMANDS_TOPIC,
    key: reply.group,
    value: JSON.stringify(part),
  }));
}

const ajv = new Ajv({ strict: true, allowUnionTypes: true });
const controlRequestSchema: JSONSchemaType<ControlRequest> = {
  type: 'object',
  required: ['v', 'kind', 'id', 'type', 'group', 'by', 'at'],
  properties: {
    v: { type: 'integer', const: 1 },
    kind: { type: 'string', const: 'command' },
    id: { type: 'string', minLength: 1 },
    // Any type: one this version does not know is answered with a refusal (decodeControlRecord), not ignored.
    type: { type: 'string', minLength: 1 },
    group: { type: 'string', minLength: 1 },
    scheduleIds: { type: 'array', items: { type: 'string' }, nullable: true },
    backfill: {
      type: 'object',
      nullable: true,
      required: ['from', 'to'],
      properties: {
        from: { type: 'string' },
        to: { type: 'string' },
        max: { type: 'integer', nullable: true },
        dryRun: { type: 'boolean', nullable: true },
      },
    },
    by: { type: 'string' },
    at: { type: 'string' },
  },
};
const isControlRequest = ajv.compile(controlRequestSchema);

/** A record of `taskmanager.commands` as read: a command, a reply (or reply part), or neither and why. */
export type CommandsRecord =
  | { kind: 'command'; command: ControlRequest }
  /** A well-formed request of a type this version does not know (a newer sender's): refused by name. */
  | { kind: 'unknown-type'; command: Omit<ControlRequest, 'type'> & { type: string } }
  | { kind: 'reply'; reply: ControlReply }
  /** A reply no sender can match (no replyTo): nobody's answer, and no command either. */
  | { kind: 'stray-reply' }
  | { kind: 'invalid'; why: string };

/**
 * Reads a record value of `taskmanager.commands`. A command is checked against its schema (its `type` may be any
 * name: one not in {@link CONTROL_ACTIONS} reads as `unknown-type`, for its answerer to refuse by name); a reply only
 * for its `kind` and `replyTo` (its sender waits for it by `replyTo`; {@link ReplyJoiner} checks the parts).
 */
export function decodeControlRecord(value: Buffer | null): CommandsRecord {
  let data: unknown;
  try {
    data = JSON.parse(value?.toString('utf8') ?? 'null');
  } catch {
    data = undefined;
  }
  if (typeof data === 'object' && data !== null) {
    const { kind, replyTo } = data as { kind?: unknown; replyTo?: unknown };
    if (kind === 'reply' || kind === 'reply-part')
      return typeof replyTo === 'string'
        ? { kind: 'reply', reply: data as ControlReply }
        : { kind: 'stray-reply' };
  }
  if (!isControlRequest(data)) return { kind: 'invalid', why: ajv.errorsText(isControlRequest.errors) };
  return (CONTROL_ACTIONS as readonly string[]).includes(data.type)
    ? { kind: 'command', command: data }
    : { kind: 'unknown-type', command: data };
}
