import { createHash } from 'node:crypto';
import { formatDuration } from '../duration.js';
import { excluding } from './calendar.js';
import type { ExcludedDays } from './calendar.js';
import { windowed } from './compiled.js';
import type { CompiledSchedule } from './compiled.js';
import { windowOf } from './model.js';
import type { ScheduleOptions } from './model.js';
import { compileSpec } from './spec.js';
import type { ScheduleSpec } from './spec.js';

/**
 * Jitter: each fire of a schedule with `jitter` J (seconds) is due at its nominal instant t plus a delay that is a
 * function of its taskId (`Id@t`) alone, so every instance of a group, a failover and a replay agree on it and the
 * taskId (hence exactly-once) stays that of t. The delay is in [0, J) and below the gap from t to the next nominal
 * instant, so a fire is always due before the next one is: due instants keep the order of their nominal instants,
 * and "the last fired instant" means the same with and without jitter.
 */

/** A fire instant: its nominal instant (of the spec, in the taskId) and when it is due (with the delay). */
export interface Timed {
  readonly nominal: number;
  readonly due: number;
}

/** The delay of the fire whose taskId is `taskId`, in whole ms in [0, boundMs); 0 when boundMs < 1. */
export function jitterDelayMs(taskId: string, boundMs: number): number {
  if (boundMs < 1) return 0;
  // 48 bits of SHA-256: uniform enough and exact in a double; a per-fire cost only for schedules with jitter.
  return createHash('sha256').update(taskId).digest().readUIntBE(0, 6) % Math.floor(boundMs);
}

/** A schedule's fire times with their jitter: nominal instants of `compiled`, due `delay` later. */
export class JitteredSchedule {
  /** The jitter in ms (0: none). */
  readonly jitterMs: number;

  constructor(
    readonly compiled: CompiledSchedule,
    private readonly scheduleId: string,
    jitterSeconds: number | undefined,
  ) {
    this.jitterMs = (jitterSeconds ?? 0) * 1000;
  }

  /** When the fire of nominal instant `t` is due. */
  dueOf(t: number): number {
    if (this.jitterMs === 0) return t;
    const next = this.compiled.nextAfter(t);
    const bound = next === undefined ? this.jitterMs : Math.min(this.jitterMs, next - t);
    return t + jitterDelayMs(`${this.scheduleId}@${new Date(t).toISOString()}`, bound);
  }

  /**
   * The first fire after nominal instant `lastNominal` that is due after `notDueBefore` (a fire due at or before it
   * is past). Without jitter: the first instant after both.
   */
  firstDueAfter(lastNominal: number, notDueBefore: number): Timed | undefined {
    // Any instant at or before notDueBefore - jitter is due at or before notDueBefore.
    let t = this.compiled.nextAfter(Math.max(lastNominal, notDueBefore - this.jitterMs));
    while (t !== undefined) {
      const next = this.compiled.nextAfter(t);
      // Due before its next instant: when that is not after notDueBefore, neither is t's due (no hash needed).
      if (next === undefined || next > notDueBefore) {
        const due = this.dueOf(t);
        if (due > notDueBefore) return { nominal: t, due };
      }
      t = next;
    }
    return undefined;
  }

  /** The next `count` fires due after `afterMs` (for `next`, `status` and the API). */
  nextFires(afterMs: number, count: number): Timed[] {
    const out: Timed[] = [];
    let f = this.firstDueAfter(-Infinity, afterMs);
    while (f !== undefined && out.length < count) {
      out.push(f);
      const t = this.compiled.nextAfter(f.nominal);
      f = t === undefined ? undefined : { nominal: t, due: this.dueOf(t) };
    }
    return out;
  }
}

/**
 * The fire times of a schedule (a file entry or an API task): its spec in its zone, inside its active window
 * (`startAt`, `endAt`), without the dates its calendars exclude (`excluded`, resolved from `o.calendars` by the
 * caller), with its jitter. Everything that fires or previews fires takes them from here.
 */
export function scheduleTimes(
  spec: ScheduleSpec,
  o: ScheduleOptions,
  scheduleId: string,
  excluded?: ExcludedDays,
): JitteredSchedule {
  const { startMs, endMs } = windowOf(o);
  const compiled = excluding(windowed(compileSpec(spec, o.timeZone), startMs, endMs), excluded);
  return new JitteredSchedule(compiled, scheduleId, o.jitter);
}

/** A fire as `taskscheduler status` lists it: `<nominal>`, or `<nominal>+1m2s345ms` when jitter delays it. */
export function fireText(nominalIso: string, dueIso: string | undefined): string {
  const delay = dueIso === undefined ? 0 : Date.parse(dueIso) - Date.parse(nominalIso);
  return delay > 0 ? `${nominalIso}+${formatDuration(delay)}` : nominalIso;
}
