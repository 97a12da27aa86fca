import type { ScheduleEntry } from '../shared/config/schema.js';
import { describeSpec } from '../shared/schedule/spec.js';
import { optionsNote } from '../shared/schedule/model.js';
import { formatDuration } from '../shared/duration.js';
import { timesOf } from './fire-loop.js';
import { zonedFormatter } from '../shared/zoned-format.js';

/** `2026-11-24 21:00:00 CET`, in the given zone. */
export function formatInZone(ms: number, zone: string): string {
  return zonedFormatter(zone, 'sv-SE', true).format(new Date(ms));
}

/**
 * The text `taskscheduler next` prints: each entry, then its next `count` fire times in its zone and UTC; with
 * jitter, each nominal instant (its taskId's) followed by when it is due and its delay; only instants inside
 * StartAt/EndAt (the runs MaxRuns leaves are the running group's to count: `taskscheduler status` shows them).
 */
export function describeNextFires(entries: readonly ScheduleEntry[], nowMs: number, count: number): string {
  const lines: string[] = [];
  for (const e of entries) {
    const state = e.enabled ? '' : ' (disabled: never fires)';
    const note = optionsNote(e);
    lines.push(
      `${e.id}: "${describeSpec(e.spec)}" ${e.timeZone}${note} -> ${e.topic} ${e.processor}${state}`,
    );
    for (const { nominal, due } of timesOf(e).nextFires(nowMs, count)) {
      const delayed = e.jitter
        ? ` due ${new Date(due).toISOString()} (+${formatDuration(due - nominal)})`
        : '';
      lines.push(
        `  ${formatInZone(nominal, e.timeZone).padEnd(26)} ${new Date(nominal).toISOString()}${delayed}`,
      );
    }
  }
  return lines.join('\n');
}
