import type { ScheduleEntry } from '../shared/config/schema.js';
import { nextInstants } from '../shared/schedule/compiled.js';
import { compileSpec, describeSpec } from '../shared/schedule/spec.js';
import { zonedFormatter } from '../shared/zoned-format.js';

/** `2026-11-24 21:00:00 CET`, in the given zone. */
export function formatInZone(ms: number, zone: string): string {
  return zonedFormatter(zone, 'sv-SE', true).format(new Date(ms));
}

/** The text `taskscheduler next` prints: each entry, then its next `count` fire times in its zone and UTC. */
export function describeNextFires(entries: readonly ScheduleEntry[], nowMs: number, count: number): string {
  const lines: string[] = [];
  for (const e of entries) {
    const state = e.enabled ? '' : ' (disabled: never fires)';
    lines.push(`${e.id}: "${describeSpec(e.spec)}" ${e.timeZone} -> ${e.topic} ${e.processor}${state}`);
    for (const t of nextInstants(compileSpec(e.spec, e.timeZone), nowMs, count)) {
      lines.push(`  ${formatInZone(t, e.timeZone).padEnd(26)} ${new Date(t).toISOString()}`);
    }
  }
  return lines.join('\n');
}
