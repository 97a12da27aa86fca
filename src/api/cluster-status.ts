import cronstrue from 'cronstrue';
import type { Clock } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import type { Logger } from '../shared/logger.js';
import { SCHEDULER_STATE_TOPIC, stateKey } from '../shared/codecs/scheduler-state.js';
import { describeSpec } from '../shared/schedule/spec.js';
import { specOfTask } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { ControlClient } from '../shared/scheduler-control-client.js';
import type { ControlResult, ControlSend } from '../shared/scheduler-control-client.js';
import type { ControlReply, EntryStatus, ScheduleTimesShown } from '../shared/codecs/scheduler-control.js';
import type { BackfillRange, BackfillResult } from '../shared/backfill.js';
import { partitionForKey } from '../shared/kafka/index.js';
import type { EventRates, RateSeries } from './event-rates.js';
import { decodeCursor, encodeCursor } from './page-cursor.js';
import { ApiError } from './problem.js';
import { Refreshed } from './refreshed.js';
import type { TaskRun } from './run-history.js';
import { endedByWindow, nextFires } from './task-model.js';
import type { CalendarsOf } from '../shared/tasks/calendars.js';
import type { TaskView } from './task-view.js';

/** An API task's next three fires in a row: their instants, and with jitter when each is due. */
function nextOfTask(
  def: TaskDefinition,
  latest: TaskRun | undefined,
  now: number,
  calendarsOf: CalendarsOf | undefined,
): Pick<ScheduleRow, 'nextFireTimes' | 'jitter' | 'nextDueTimes'> {
  const next = def.enabled ? nextFires(def, latest, now, 3, calendarsOf) : [];
  const nextFireTimes = next.map((n) => n.utc);
  if (!def.jitter) return { nextFireTimes };
  return { nextFireTimes, jitter: def.jitter, nextDueTimes: next.map((n) => n.jitteredFor ?? n.utc) };
}

/** The window, limit and calendar options that are set. */
function windowFields(
  o: Pick<ScheduleRow, 'startAt' | 'endAt' | 'maxRuns' | 'calendars' | 'overlap'>,
): Partial<ScheduleRow> {
  return Object.fromEntries(
    (['startAt', 'endAt', 'maxRuns', 'calendars', 'overlap'] as const).flatMap((k) =>
      o[k] === undefined || o[k] === 'queue' ? [] : [[k, o[k]]],
    ),
  );
}

/** One schedule, from a schedule file or the HTTP API, as the dashboard's overview shows it. */
export interface ScheduleRow extends ScheduleTimesShown {
  id: string;
  source: 'file' | 'api';
  group: string;
  /** As written: the cron expression, `once at …` or `every …`. */
  spec: string;
  /** The same in words. */
  description: string;
  timeZone: string;
  processor: string;
  topic: string;
  /** `ended`: past its endAt or at its maxRuns (docs/schedule-file.md#active-window-and-limit). */
  state: 'enabled' | 'paused' | 'disabled' | 'ended';
  /** `host:pid` of the scheduler instance that fires it; absent when no instance of its group answered. */
  owner?: string;
  lastFiredAt?: string;
  lastRun?: TaskRun;
}

export interface SchedulerInstance {
  host: string;
  pid: number;
  partitions: number[];
  ready: boolean;
  reason: string;
}

export interface SchedulerGroupInfo {
  group: string;
  /** Kafka lists members of the group now (instances may still fail to answer the status request in time). */
  running: boolean;
  instances: SchedulerInstance[];
  /** State partitions no instance answered for (their entries fire nowhere, or their owner is slow). */
  unansweredPartitions: number[];
}

export interface ConsumerGroupInfo {
  group: string;
  state: string;
  members: Array<{ clientId: string; host: string; partitions: string[] }>;
  partitions: Array<{
    topic: string;
    partition: number;
    /** Next offset the group reads (absent: it never committed there). */
    committed?: string;
    end: string;
    lag: string;
    /** `clientId host` of the member that has it. */
    owner?: string;
  }>;
  totalLag: string;
  /** Why its lag is not shown. */
  error?: string;
}

export interface ScheduleOverview {
  items: ScheduleRow[];
  /** Rows matching the search, in all pages. */
  total: number;
  /** Pass as `cursor` for the next page; absent on the last page. */
  nextCursor?: string;
  groups: SchedulerGroupInfo[];
}

export interface ScheduleQuery {
  limit: number;
  search?: string;
  /** nextCursor of the previous page. */
  cursor?: string;
}

export interface ClusterOverview {
  schedulers: SchedulerGroupInfo[];
  consumers: ConsumerGroupInfo[];
  rates: RateSeries;
}

/** A cron expression in words (cronstrue); the expression itself when cronstrue cannot read it. */
export function inWords(spec: string): string {
  if (spec.startsWith('once at ') || spec.startsWith('every ')) return spec;
  try {
    return cronstrue.toString(spec, { use24HourTimeFormat: true, throwExceptionOnParseError: true });
  } catch {
    return spec;
  }
}

type ActiveGroups = Awaited<ReturnType<KafkaClient['activeGroups']>>;

const STATUS_TIMEOUT_MS = 2000;
const COMMAND_TIMEOUT_MS = 5000;
/** A backfill reads the schedule's task topic before it publishes: it may take a while. */
const BACKFILL_TIMEOUT_MS = 60_000;

interface Snapshot {
  /** Sorted by (id, group), the order of pages. */
  rows: ScheduleRow[];
  /** Per row, what a search looks in (lower case), made once per snapshot rather than per request. */
  haystacks: string[];
  schedulers: SchedulerGroupInfo[];
}

/** A take that fails for any other reason than an answer of ours: Kafka did not answer. */
function kafkaUnreachable<T>(take: () => Promise<T>): () => Promise<T> {
  return () =>
    take().catch((err: unknown) => {
      throw err instanceof ApiError ? err : new ApiError(503, `Kafka unreachable: ${errorMessage(err)}`);
    });
}

function byIdThenGroup(a: { id: string; group: string }, b: { id: string; group: string }): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : a.group < b.group ? -1 : a.group > b.group ? 1 : 0;
}

/** The first index of `rows` (sorted by id, group) at the row `key` names, or after it with `after`. */
function indexOfRow(
  rows: readonly ScheduleRow[],
  [id = '', group = '']: readonly string[],
  after = false,
): number {
  let lo = 0;
  let hi = rows.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const c = byIdThenGroup(rows[mid]!, { id, group });
    if (c < 0 || (after && c === 0)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface ClusterStatusOptions {
  kafka: KafkaClient;
  view: TaskView;
  rates: EventRates;
  clock: Clock;
  logger: Logger;
  /**
   * The schedules, scheduler and consumer groups are asked again at most this often, however many callers there are
   * (callers in between are answered from the last answers; a pause, resume or trigger made here is seen at once).
   * @default 5000
   */
  refreshMs?: number;
  /** Resolves the calendars API tasks name, for the next fires of those no instance reported. */
  calendarsOf?: CalendarsOf;
}

/**
 * What runs where, for the dashboard: the scheduler groups and consumer groups that have members (from Kafka's
 * group metadata), each scheduler group's entries from its instances (the `status` command, as `taskscheduler
 * status` asks it), the API tasks of groups no instance serves (from the view), and lag per partition.
 */
export class ClusterStatus {
  private client: Promise<ControlClient> | undefined;
  private statePartitions = 0;
  /** Kafka's group metadata, read once for both views below. */
  private readonly groups: Refreshed<ActiveGroups>;
  private readonly schedulerView: Refreshed<Snapshot>;
  private readonly consumerView: Refreshed<ConsumerGroupInfo[]>;

  constructor(private readonly o: ClusterStatusOptions) {
    const every = { clock: o.clock, everyMs: o.refreshMs ?? 5000 };
    this.groups = new Refreshed({ ...every, take: kafkaUnreachable(() => o.kafka.activeGroups()) });
    this.schedulerView = new Refreshed({ ...every, take: kafkaUnreachable(() => this.takeSchedulers()) });
    this.consumerView = new Refreshed({ ...every, take: kafkaUnreachable(() => this.takeConsumers()) });
  }

  /** One page of the schedules, sorted by (id, group), from the last snapshot (see refreshMs). */
  async schedules(q: ScheduleQuery): Promise<ScheduleOverview> {
    const s = await this.schedulerView.latest();
    const needle = q.search?.toLowerCase();
    let rows = s.rows;
    if (needle) rows = rows.filter((_, i) => s.haystacks[i]!.includes(needle));
    const start = q.cursor === undefined ? 0 : indexOfRow(rows, decodeCursor(q.cursor, 2), true);
    const items = rows.slice(start, start + q.limit);
    const last = items[items.length - 1];
    return {
      items,
      total: rows.length,
      ...(last && start + q.limit < rows.length ? { nextCursor: encodeCursor([last.id, last.group]) } : {}),
      groups: s.schedulers,
    };
  }

  /** One schedule of a group with its recent runs (404 when no instance of the group reports it). */
  /**
   * One schedule of a group with its recent runs: 404 when its group has no instance or no such schedule, 503 when
   * the instance that would own it did not answer in time.
   */
  async schedule(group: string, id: string): Promise<ScheduleRow & { runs: TaskRun[] }> {
    const row = await this.find(group, id);
    return { ...row, runs: this.o.view.runs.runs(id) };
  }

  /** An API task as the view knows it, when no instance reported it (no owner, its fires computed here). */
  private rowFromView(def: TaskDefinition, now: number): ScheduleRow {
    const spec = specOfTask(def);
    const text = typeof spec === 'string' ? spec : describeSpec(spec);
    const latest = this.o.view.latestRun(def.id);
    return {
      id: def.id,
      source: 'api',
      group: def.group,
      spec: text,
      description: inWords(text),
      timeZone: def.timeZone,
      processor: def.processor,
      topic: def.topic,
      state: !def.enabled
        ? 'disabled'
        : endedByWindow(def, latest, now, this.o.calendarsOf)
          ? 'ended'
          : 'enabled',
      ...nextOfTask(def, latest, now, this.o.calendarsOf),
      ...windowFields(def),
      ...withRun(latest),
    };
  }

  private async find(group: string, id: string): Promise<ScheduleRow> {
    const inSnapshot = (s: Snapshot): ScheduleRow | undefined => {
      const r = s.rows[indexOfRow(s.rows, [id, group])];
      return r?.id === id && r.group === group ? r : undefined;
    };
    let s = await this.schedulerView.latest();
    let row = inSnapshot(s);
    // An API task created since the snapshot: the view has it (no owner known yet).
    const def = row ? undefined : this.o.view.get(id)?.def;
    if (!row && def?.group === group) return this.rowFromView(def, this.o.clock.now());
    // Maybe created since: a snapshot at most refreshMs old decides (asking for ids that exist nowhere must not
    // make taskapi ask every scheduler again and again).
    if (!row) {
      s = await this.schedulerView.fresh();
      row = inSnapshot(s);
    }
    if (row) return row;
    const g = s.schedulers.find((x) => x.group === group);
    if (!g?.running) throw new ApiError(404, `no instance of scheduler group ${group} is running`);
    const p = partitionForKey(stateKey(group, id), this.statePartitions);
    if (g.unansweredPartitions.includes(p))
      throw new ApiError(
        503,
        `the instance owning state partition ${p} of group ${group} (where ${id} would be) did not answer in time`,
      );
    throw new ApiError(404, `no schedule ${JSON.stringify(id)} in scheduler group ${group}`);
  }

  /**
   * Trigger, pause or resume a schedule through its owner instance, as `taskscheduler trigger|pause|resume` do.
   * An API task is paused with `enabled` (PATCH), so that every view of it agrees: pause and resume here are for
   * schedule file entries.
   */
  async command(
    type: 'trigger' | 'pause' | 'resume',
    group: string,
    id: string,
    by: string,
  ): Promise<{ message: string; taskId?: string }> {
    const row = await this.find(group, id);
    if (row.source === 'api' && type !== 'trigger')
      throw new ApiError(
        409,
        `${id} is a task of the HTTP API: ${type} it with PATCH /api/v1/tasks/${id} {"enabled": ${type === 'resume'}}`,
      );
    if (!row.owner) {
      // No owner because no instance runs is a state that lasts (409); one that runs is taking it over (503).
      const { schedulers } = await this.schedulerView.latest();
      if (!schedulers.find((x) => x.group === group)?.running)
        throw new ApiError(
          409,
          `no instance of scheduler group ${group} is running` +
            (row.source === 'api' ? `: fire ${id} without one with POST /api/v1/tasks/${id}/trigger` : ''),
        );
      throw new ApiError(503, `no instance of group ${group} owns ${id} now (taking over?)`);
    }
    const reply = await this.ask({ type, group, scheduleIds: [id], by }, COMMAND_TIMEOUT_MS);
    return { message: reply.message, ...(reply.taskId ? { taskId: reply.taskId } : {}) };
  }

  /**
   * Backfills a schedule through the instance that owns it (docs/operations.md#backfill): its answer, or an
   * ApiError (503 when no instance answered: the backfill may still have happened, a dry run tells).
   */
  async backfill(
    group: string,
    id: string,
    range: BackfillRange,
    by: string,
  ): Promise<{ message: string; backfill: BackfillResult }> {
    if (!schedulerGroups(await this.groups.fresh()).has(group))
      throw new ApiError(
        409,
        `no instance of scheduler group ${group} is running: only the owner of ${id} backfills it`,
      );
    const reply = await this.ask(
      { type: 'backfill', group, scheduleIds: [id], backfill: range, by },
      BACKFILL_TIMEOUT_MS,
    );
    if (!reply.backfill) throw new Error(`the owner of ${id} answered a backfill without its result`);
    return { message: reply.message, backfill: reply.backfill };
  }

  /** A request about one schedule, sent to its group: the owner's reply when it did what was asked. */
  private async ask(c: ControlSend & { by: string }, timeoutMs: number): Promise<ControlReply> {
    const id = c.scheduleIds?.[0] ?? '';
    let r: ControlResult;
    try {
      if (this.statePartitions === 0)
        this.statePartitions = await this.o.kafka.partitionCount(SCHEDULER_STATE_TOPIC);
      r = await (await this.commands()).send(c, { timeoutMs, statePartitions: this.statePartitions });
    } catch (err) {
      throw new ApiError(503, `Kafka unreachable: ${errorMessage(err)}; nothing was sent`);
    }
    this.schedulerView.invalidate();
    const reply = r.replies[0];
    if (!reply)
      throw new ApiError(
        503,
        `the owner of ${id} in group ${c.group} did not answer within ${timeoutMs / 1000} s (ownership moving, ` +
          `or no instance of the group running?)`,
      );
    // An owner that does not know the entry (deleted since the snapshot) answers NOT_FOUND, one refusing the request
    // itself USAGE; any other refusal is a state of the group that lasts (owner moved, publish failed, paused), as
    // is a reply from an instance without codes.
    if (!reply.ok)
      throw new ApiError(
        reply.code === 'NOT_FOUND' ? 404 : reply.code === 'USAGE' ? 400 : 409,
        reply.message,
      );
    return reply;
  }

  async cluster(): Promise<ClusterOverview> {
    const [s, consumers] = await Promise.all([this.schedulerView.latest(), this.consumerView.latest()]);
    return { schedulers: s.schedulers, consumers, rates: this.o.rates.series() };
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await (await client?.catch(() => undefined))?.stop();
  }

  private commands(): Promise<ControlClient> {
    this.client ??= (async () => {
      const c = new ControlClient(this.o.kafka);
      await c.start();
      return c;
    })().catch((err: unknown) => {
      this.client = undefined;
      throw err;
    });
    return this.client;
  }

  private async takeSchedulers(): Promise<Snapshot> {
    const { kafka, view } = this.o;
    if (this.statePartitions === 0) this.statePartitions = await kafka.partitionCount(SCHEDULER_STATE_TOPIC);
    const active = await this.groups.fresh();
    const live = schedulerGroups(active);
    const apiGroups = new Set<string>();
    for (const t of view.entries()) apiGroups.add(t.group);
    const answers = await this.askStatus(live);
    const now = this.o.clock.now();
    const { rows, seen } = reportedRows(answers, view);
    // API tasks no instance reported: their group runs nowhere now, or their owner did not answer in time.
    for (const t of view.entries()) {
      const def = seen.has(`${t.group}/${t.id}`) ? undefined : view.get(t.id)?.def;
      if (def) rows.push(this.rowFromView(def, now));
    }
    rows.sort(byIdThenGroup);
    const schedulers = [...new Set([...live, ...apiGroups])]
      .sort()
      .map((group) => schedulerGroupInfo(group, live, answers.get(group), this.statePartitions));
    const haystacks = rows.map((r) =>
      [r.id, r.group, r.processor, r.spec, r.description, r.source].join('\n').toLowerCase(),
    );
    return { rows, haystacks, schedulers };
  }

  /** The status answers of the instances of each live scheduler group (none for a group that did not answer). */
  private async askStatus(live: Set<string>): Promise<Map<string, ControlResult>> {
    const client = live.size > 0 ? await this.commands() : undefined;
    const answers = new Map<string, ControlResult>();
    await Promise.all(
      [...live].map(async (group) => {
        const r = await client?.send(
          { type: 'status', group, by: 'taskapi dashboard' },
          { timeoutMs: STATUS_TIMEOUT_MS, statePartitions: this.statePartitions },
        );
        if (r) answers.set(group, r);
      }),
    );
    return answers;
  }

  /**
   * Groups of `taskconsumer` processes (members' client id `taskconsumer-<pid>`) reading a task topic (not
   * taskmanager.* nor __*), with lag per partition. Other applications' groups on the same cluster are not ours.
   */
  private async takeConsumers(): Promise<ConsumerGroupInfo[]> {
    const { kafka } = this.o;
    const active = await this.groups.fresh();
    const isInternal = (t: string) => t.startsWith('taskmanager.') || t.startsWith('__');
    const consumerGroups = active
      .map((g) => ({
        g,
        topics: [...new Set(g.members.flatMap((m) => Object.keys(m.assignment)))].filter(
          (t) => !isInternal(t),
        ),
      }))
      .filter((x) => x.topics.length > 0 && x.g.members.some((m) => m.clientId.startsWith('taskconsumer-')));
    return Promise.all(consumerGroups.map(({ g, topics }) => consumerGroupInfo(kafka, g, topics)));
  }
}

/** Scheduler groups with members now: their members are assigned partitions of the state topic. */
function schedulerGroups(active: ActiveGroups): Set<string> {
  return new Set(
    active.filter((g) => g.members.some((m) => SCHEDULER_STATE_TOPIC in m.assignment)).map((g) => g.groupId),
  );
}

/** The schedules the instances of each group reported, and `<group>/<id>` of each. */
function reportedRows(
  answers: Map<string, ControlResult>,
  view: TaskView,
): { rows: ScheduleRow[]; seen: Set<string> } {
  const rows: ScheduleRow[] = [];
  const seen = new Set<string>();
  for (const [group, r] of answers)
    for (const reply of r.replies)
      for (const e of reply.entries ?? []) {
        seen.add(`${group}/${e.id}`);
        rows.push({
          id: e.id,
          // Schedulers from before this field (a rolling upgrade): an API task of this group is known here.
          source:
            (e.source as EntryStatus['source'] | undefined) ??
            (view.entry(e.id)?.group === group ? 'api' : 'file'),
          group,
          spec: e.spec,
          description: inWords(e.spec),
          timeZone: e.timeZone,
          processor: e.processor,
          topic: e.topic,
          state: e.state,
          owner: `${reply.from.host}:${reply.from.pid}`,
          nextFireTimes: e.nextFireTimes,
          ...(e.jitter ? { jitter: e.jitter } : {}),
          ...(e.nextDueTimes ? { nextDueTimes: e.nextDueTimes } : {}),
          ...windowFields(e),
          ...(e.runCount === undefined ? {} : { runCount: e.runCount }),
          ...(e.lastFiredAt ? { lastFiredAt: e.lastFiredAt } : {}),
          ...withRun(view.latestRun(e.id)),
        });
      }
  return { rows, seen };
}

/** A scheduler group's instances as they answered; every state partition unanswered when none did. */
function schedulerGroupInfo(
  group: string,
  live: Set<string>,
  r: ControlResult | undefined,
  statePartitions: number,
): SchedulerGroupInfo {
  return {
    group,
    running: live.has(group),
    instances: (r?.replies ?? []).map((x) => ({
      ...x.from,
      partitions: x.partitions ?? [],
      ready: x.ok,
      reason: x.message,
    })),
    unansweredPartitions: r ? r.unanswered : Array.from({ length: statePartitions }, (_, p) => p),
  };
}

/** A taskconsumer group with its members and lag per partition (an error instead when its offsets cannot be read). */
async function consumerGroupInfo(
  kafka: KafkaClient,
  g: ActiveGroups[number],
  topics: string[],
): Promise<ConsumerGroupInfo> {
  let s;
  try {
    s = await kafka.groupStatus(g.groupId, topics.sort());
  } catch (err) {
    // One group's topic deleted under it (or the like) must not hide the others.
    return {
      group: g.groupId,
      state: g.state,
      members: [],
      partitions: [],
      totalLag: '0',
      error: `cannot read its offsets: ${errorMessage(err)}`,
    };
  }
  return {
    group: g.groupId,
    state: s.state,
    members: s.members.map((m) => ({
      clientId: m.clientId,
      host: m.host,
      partitions: Object.entries(m.assignment).flatMap(([topic, ps]) =>
        [...ps].sort((a, b) => a - b).map((p) => `${topic}/${p}`),
      ),
    })),
    partitions: s.partitions.map((p) => ({
      topic: p.topic,
      partition: p.partition,
      ...(p.committed === undefined ? {} : { committed: p.committed.toString() }),
      end: p.end.toString(),
      lag: p.lag.toString(),
      ...(p.owner === undefined ? {} : { owner: p.owner }),
    })),
    totalLag: s.partitions.reduce((n, p) => n + p.lag, 0n).toString(),
  };
}

function withRun(run: TaskRun | undefined): { lastRun?: TaskRun } {
  return run ? { lastRun: run } : {};
}
