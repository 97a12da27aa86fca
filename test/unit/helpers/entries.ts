import type { ScheduleEntry } from '../../../src/shared/config/schema.js';

/** A schedule entry as the loader makes it: UTC, enabled, fire-once, the NoopProcessor, on topic `t`. */
export function cronEntry(id: string, cron: string, extra: Partial<ScheduleEntry> = {}): ScheduleEntry {
  return {
    id,
    spec: { kind: 'cron', cron },
    topic: 't',
    timeZone: 'UTC',
    enabled: true,
    misfire: 'fire-once',
    misfireWindowSeconds: 3600,
    processor: 'NoopProcessor',
    index: 0,
    ...extra,
  };
}
