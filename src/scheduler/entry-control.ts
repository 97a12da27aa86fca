import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { manualFireInstant, taskIdFor } from '../shared/codecs/task-message.js';
import { describeSpec } from '../shared/schedule/spec.js';
import type { EntryCatalog } from './entry-catalog.js';
import type { EntryStates } from './entry-states.js';
import { limitReached, timesOf } from './fire-loop.js';
import type { FireLoop } from './fire-loop.js';
import type { PartitionOwner } from './partition-owner.js';
import { pauseStateValue, specHashOf, stateRecord } from '../shared/codecs/scheduler-state.js';
import type { ControlOutcome, EntryStatus } from '../shared/codecs/scheduler-control.js';

export interface EntryControlOptions {
  group: string;
  clock: Clock;
  logger: Logger;
  entries: EntryCatalog;
  states: EntryStates;
  loop: FireLoop;
  /** The active owner of an entry's state partition, when this instance is it. */
  ownerOf(id: string): PartitionOwner | undefined;
}

/**
 * The control commands one scheduler answers for the entries it owns: trigger, pause, resume, status. Pause and
 * resume are state records its owner writes in a transaction, so they hold across restarts and failover.
 */
export class EntryControl {
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
