import type { Clock } from '../shared/clock.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import type { Logger } from '../shared/logger.js';
import type { ErrorCode } from '../shared/errors.js';
import { manualFireInstant, taskIdFor } from '../shared/codecs/task-message.js';
import { describeSpec } from '../shared/schedule/spec.js';
import type { EntryCatalog } from './entry-catalog.js';
import type { EntryStates } from './entry-states.js';
import { limitReached, timesOf } from './fire-loop.js';
import type { FireLoop } from './fire-loop.js';
import type { PartitionOwner } from './partition-owner.js';
import { pauseStateValue, specHashOf, stateRecord } from '../shared/codecs/scheduler-state.js';
import type { ControlOutcome, EntryStatus } from '../shared/codecs/scheduler-control.js';
import { optionsNote } from '../shared/schedule/model.js';
import { parseRfc3339 } from '../shared/rfc3339.js';
import { BACKFILL_DEFAULT_MAX, BACKFILL_MAX_CEILING, rangeProblems } from '../shared/backfill.js';
import type { BackfillRange, BackfillResult } from '../shared/backfill.js';
import { backfillFire, instantsOf, sortInstants } from './backfill.js';
import type { PublishedTasks } from './backfill.js';

export interface EntryControlOptions {
  group: string;
  clock: Clock;
  logger: Logger;
  entries: EntryCatalog;
  states: EntryStates;
  loop: FireLoop;
  /** The active owner of an entry's state partition, when this instance is it. */
  ownerOf(id: string): PartitionOwner | undefined;
  /** Every taskId of an entry in its task topic (read_committed, to its end): see scheduler/backfill.ts. */
  publishedTaskIds(e: ScheduleEntry): Promise<PublishedTasks>;
}

const iso = (ms: number): string => new Date(ms).toISOString();
const refused = (code: ErrorCode, message: string): ControlOutcome => ({ ok: false, code, message });

/**
 * The control commands one scheduler answers for the entries it owns: trigger, pause, resume, status. Pause and
 * resume are state records its owner writes in a transaction, so they hold across restarts and failover.
 */
export class EntryControl {
  /** Backfills run one after another: each reads the task topic after the previous one's tasks are committed. */
  private backfills: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: EntryControlOptions) {}

  /** Whether this instance answers commands about `id` (it owns the entry's state partition). */
  answersFor(id: string): boolean {
    return this.o.ownerOf(id) !== undefined;
  }

  /**
   * Fires an entry now, outside its spec, with its own taskId (the instant of the command, never a whole second,
   * so never the taskId of a spec instant). Resolves once the task is committed to Kafka.
   */
  async trigger(id: string): Promise<ControlOutcome> {
    const e = this.o.entries.get(id);
    const owner = this.o.ownerOf(id);
    if (!e || !owner) return this.unknown(id);
    const at = manualFireInstant(this.o.clock.now());
    await owner.publish([{ entry: e, scheduledFor: at, manual: true }]);
    const taskId = taskIdFor(id, at);
    this.o.logger.info(`triggered ${id} by command`, { taskId });
    return { ok: true, message: `fired ${id} now as ${taskId} (topic ${e.topic})`, taskId };
  }

  /**
   * Pauses (or resumes) an entry: persisted in the state topic by its owner, so it holds across restarts and
   * failover. A paused entry fires nothing and catches nothing up; resuming arms it from now.
   */
  async setPaused(id: string, paused: boolean, by: string): Promise<ControlOutcome> {
    const e = this.o.entries.get(id);
    const owner = this.o.ownerOf(id);
    if (!e || !owner) return this.unknown(id);
    const known = this.o.states.get(id);
    if ((known?.paused ?? false) === paused)
      return { ok: true, message: `${id} was already ${paused ? 'paused' : 'running'}; nothing changed` };
    const now = this.o.clock.now();
    // Paused from now: nothing before now is owed, nothing while paused will be caught up.
    const last = Math.max(known?.lastFiredMs ?? now, now);
    if (paused) this.o.loop.remove(id);
    await owner.publish(
      [],
      [
        stateRecord(
          this.o.group,
          id,
          this.o.entries.partitionOf(id),
          pauseStateValue(e, last, paused, now, by, known?.runs),
        ),
      ],
    );
    const runs = known?.runs ?? 0;
    this.o.states.set(id, { lastFiredMs: last, specHash: specHashOf(e), paused, runs });
    if (!paused) this.o.loop.add(e, now, { lastFiredMs: last, runs });
    this.o.logger.info(`${paused ? 'paused' : 'resumed'} ${id} by command from ${by}`);
    const next = paused || !e.enabled ? undefined : timesOf(e).firstDueAfter(last, now)?.nominal;
    return {
      ok: true,
      message:
        `${id} ${paused ? 'paused' : 'resumed'}` +
        (next === undefined ? '' : `; next fire ${new Date(next).toISOString()}`) +
        (!paused && !e.enabled ? ' (but Enabled is false in the schedule file: it stays off)' : ''),
    };
  }

  /**
   * Publishes each instant of `range` that has no task yet, oldest first, in the entry's partition's transactions
   * (with `dryRun`, only says which): docs/operations.md#backfill. Resolves once they are committed.
   */
  backfill(id: string, range: BackfillRange, by: string): Promise<ControlOutcome> {
    const run = this.backfills.then(() => this.backfillNow(id, range, by));
    this.backfills = run.catch(() => undefined);
    return run;
  }

  private async backfillNow(id: string, range: BackfillRange, by: string): Promise<ControlOutcome> {
    const e = this.o.entries.get(id);
    const owner = this.o.ownerOf(id);
    if (!e || !owner) return this.unknown(id);
    const problems = rangeProblems(range);
    if (problems.length > 0)
      return refused('USAGE', problems.map((p) => `${p.field} ${p.detail}`).join('; '));
    if (!e.enabled)
      return refused(
        'CONFLICT',
        `${id} is disabled (${e.source === 'api' ? 'enabled' : 'Enabled'} false): nothing is backfilled`,
      );
    if (this.o.states.isPaused(id))
      return refused(
        'CONFLICT',
        `${id} is paused: resume it first (taskscheduler resume ${id}); its backfilled tasks would run while it is paused`,
      );
    const [fromMs, toMs] = [parseRfc3339(range.from) ?? NaN, parseRfc3339(range.to) ?? NaN];
    const now = this.o.clock.now();
    if (toMs > now)
      return refused(
        'USAGE',
        `to ${range.to} is in the future (it is ${iso(now)}): a backfill publishes only instants that have passed`,
      );
    const max = range.max ?? BACKFILL_DEFAULT_MAX;
    const { instants, beyond } = instantsOf(e, fromMs, toMs, max);
    if (beyond !== undefined)
      return refused(
        'USAGE',
        `${range.from} to ${range.to} holds more than ${max} instants of ${id} (the next is ${iso(beyond)}): ` +
          `narrow the range, or raise max (--max, at most ${BACKFILL_MAX_CEILING})`,
      );
    if (instants.length === 0)
      return refused(
        'USAGE',
        `${id} has no instant from ${range.from} to ${range.to} ` +
          `(${describeSpec(e.spec)} in ${e.timeZone}${optionsNote(e)})`,
      );
    // Everything the loop handed out so far is queued here: once flushed it is in the task topic, and the loop never
    // fires an instant at or before the last of them again.
    const handedOut = this.o.loop.lastHandedOut(id) ?? now;
    await owner.flushed();
    const published = await this.o.publishedTaskIds(e);
    const sorted = sortInstants(id, instants, published.taskIds, this.reachOf(e, handedOut));
    const dryRun = range.dryRun === true;
    if (!dryRun && sorted.missing.length > 0)
      await owner.publish(sorted.missing.map((t) => backfillFire(e, t)));
    const result: BackfillResult = {
      topic: e.topic,
      dryRun,
      published: sorted.missing.map(iso),
      present: sorted.present.map(iso),
      pending: sorted.pending.map(iso),
      ...keptSince(sorted.missing, published.keptSinceMs),
    };
    this.o.logger.info(
      `backfill of ${id} from ${range.from} to ${range.to} by ${by}: ` +
        `${dryRun ? 'would publish' : 'published'} ${sorted.missing.length}, ` +
        `${sorted.present.length} already had a task, ${sorted.pending.length} not reached yet`,
    );
    return { ok: true, message: backfillMessage(id, result), backfill: result };
  }

  /**
   * The last instant of `e` its schedule has reached: `handedOut` (the loop's last instant for an armed entry, now
   * for one it no longer arms), but for an entry at its MaxRuns its last fired one: a backfill never takes a
   * schedule past its limit.
   */
  private reachOf(e: ScheduleEntry, handedOut: number): number {
    if (!limitReached(e, this.o.states.runs(e.id))) return handedOut;
    return Math.min(handedOut, this.o.states.lastFiredMs(e.id) ?? -Infinity);
  }

  /** The entries this instance fires (or those among `ids`), as `taskscheduler status` shows them. */
  status(ids?: readonly string[], nextCount = 3): EntryStatus[] {
    const now = this.o.clock.now();
    const chosen = ids ? ids.flatMap((id) => this.o.entries.get(id) ?? []) : this.o.entries.all();
    return chosen
      .filter((e) => this.answersFor(e.id))
      .map((e) => {
        const known = this.o.states.get(e.id);
        const times = timesOf(e);
        const runs = known?.runs ?? 0;
        // Ended: its MaxRuns used up, or past its EndAt (no instant left after the last fired that is still due).
        const ended =
          limitReached(e, runs) ||
          (e.endAt !== undefined && times.firstDueAfter(known?.lastFiredMs ?? -Infinity, now) === undefined);
        const state = !e.enabled ? 'disabled' : known?.paused ? 'paused' : ended ? 'ended' : 'enabled';
        const next = state === 'enabled' ? times.nextFires(now, nextCount) : [];
        const iso = (ms: number): string => new Date(ms).toISOString();
        return {
          id: e.id,
          source: e.source ?? 'file',
          spec: describeSpec(e.spec),
          timeZone: e.timeZone,
          topic: e.topic,
          processor: e.processor,
          state,
          partition: this.o.entries.partitionOf(e.id),
          ...(known ? { lastFiredAt: new Date(known.lastFiredMs).toISOString() } : {}),
          nextFireTimes: next.map((f) => iso(f.nominal)),
          ...(e.jitter ? { jitter: e.jitter, nextDueTimes: next.map((f) => iso(f.due)) } : {}),
          ...(e.startAt === undefined ? {} : { startAt: e.startAt }),
          ...(e.endAt === undefined ? {} : { endAt: e.endAt }),
          ...(e.maxRuns === undefined ? {} : { maxRuns: e.maxRuns, runCount: runs }),
          ...(e.calendars?.length ? { calendars: [...e.calendars] } : {}),
          ...(e.overlap && e.overlap !== 'queue' ? { overlap: e.overlap } : {}),
        };
      });
  }

  private unknown(id: string): ControlOutcome {
    return this.o.entries.has(id)
      ? {
          ok: false,
          code: 'CONFLICT',
          message: `this instance does not own ${id} (state partition ${this.o.entries.partitionOf(id)})`,
        }
      : {
          ok: false,
          code: 'NOT_FOUND',
          message: `no schedule ${JSON.stringify(id)} in group ${this.o.group} (see taskscheduler status)`,
        };
  }
}

/**
 * `keptSince` when some of the instants to publish are older than the oldest record the task topic's partition still
 * holds: their tasks may have been deleted by retention rather than never published.
 */
function keptSince(
  missing: readonly number[],
  keptSinceMs: number | undefined,
): Pick<BackfillResult, 'keptSince'> {
  return keptSinceMs !== undefined && missing.some((t) => t < keptSinceMs)
    ? { keptSince: iso(keptSinceMs) }
    : {};
}

/** What a backfill did, in one line: `published 3 … (2 already had a task)`. */
function backfillMessage(id: string, r: BackfillResult): string {
  const n = r.published.length;
  const did =
    n === 0
      ? `nothing to publish for ${id}`
      : `${r.dryRun ? 'would publish' : 'published'} ${n} task(s) of ${id} to ${r.topic}, oldest first`;
  const skipped = [
    ...(r.present.length > 0 ? [`${r.present.length} already had a task`] : []),
    ...(r.pending.length > 0 ? [`${r.pending.length} not reached by the schedule yet`] : []),
  ];
  const text = skipped.length === 0 ? did : `${did} (${skipped.join(', ')})`;
  const since = r.keptSince;
  if (since === undefined) return text;
  const older = r.published.filter((at) => at < since).length;
  return (
    `${text}; ${older} of them are older than the oldest record ${r.topic}'s partition still holds ` +
    `(${since}): their tasks may have been deleted by retention rather than never published`
  );
}
