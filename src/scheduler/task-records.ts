import type { ScheduleEntry } from '../shared/config/schema.js';
import { EVENTS_TOPIC, SCHEDULER_STATE_TOPIC, SCHEMA_VERSION, taskHeadersOf } from '../shared/messages.js';
import type { Origin } from '../shared/messages.js';
import type { OutRecord } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';
import { specHashOf, stateKey } from './state.js';

/** What never changes between two fires of one entry, serialized once. */
interface EntryParts {
  /** `"scheduleId":…,"processor":…` plus param and payload when set. */
  middle: string;
  idJson: string;
  specHash: string;
  stateKey: string;
}

/**
 * Builds the records of a batch of fires (docs/messages-and-topics.md#task-message): per fire the task message (key = schedule Id) and its
 * SCHEDULED event (key = taskId), and per entry one state record for its latest fire (manual fires move no state). This runs on the firing
 * path for every fire, so the parts of an entry's JSON that never change are serialized once per entry and the
 * rest is concatenated; the result is byte for byte what `JSON.stringify` gives for the same objects.
 */
export class FireEncoder {
  private readonly parts = new WeakMap<ScheduleEntry, EntryParts>();
  private readonly schedulerJson: string;
  private readonly byJson: string;
  private iso = { ms: NaN, text: '' };

  constructor(
    private readonly group: string,
    private readonly partition: number,
    scheduler: Origin & { group: string },
  ) {
    this.schedulerJson = JSON.stringify(scheduler);
    this.byJson = JSON.stringify({ ...scheduler, role: 'scheduler' });
  }

  records(fires: readonly Fire[], firedAtMs: number): OutRecord[] {
    const firedAt = new Date(firedAtMs).toISOString();
    const out: OutRecord[] = [];
    const latest = new Map<ScheduleEntry, Fire>();
    for (const fire of fires) {
      const p = this.partsOf(fire.entry);
      const scheduledFor = this.isoOf(fire.scheduledFor);
      const taskId = `${fire.entry.id}@${scheduledFor}`;
      const taskIdJson = JSON.stringify(taskId);
      out.push(
        {
          topic: fire.entry.topic,
          key: fire.entry.id,
          value:
            `{"v":${SCHEMA_VERSION},"taskId":${taskIdJson},${p.middle},"scheduledFor":"${scheduledFor}",` +
            `"firedAt":"${firedAt}","scheduler":${this.schedulerJson}}`,
          headers: taskHeadersOf(taskId, fire.entry.id, scheduledFor),
        },
        {
          topic: EVENTS_TOPIC,
          key: taskId,
          value:
            `{"v":1,"taskId":${taskIdJson},"scheduleId":${p.idJson},"status":"SCHEDULED","at":"${firedAt}",` +
            `"attempt":0,"by":${this.byJson}}`,
          headers: { 'task-id': taskId },
        },
      );
      if (fire.manual) continue;
      const prev = latest.get(fire.entry);
      if (!prev || prev.scheduledFor < fire.scheduledFor) latest.set(fire.entry, fire);
    }
    for (const [entry, f] of latest) {
      const p = this.partsOf(entry);
      out.push({
        topic: SCHEDULER_STATE_TOPIC,
        key: p.stateKey,
        value: `{"v":1,"lastFiredAt":"${this.isoOf(f.scheduledFor)}","specHash":"${p.specHash}","updatedAt":"${firedAt}"}`,
        partition: this.partition,
      });
    }
    return out;
  }

  private partsOf(e: ScheduleEntry): EntryParts {
    let p = this.parts.get(e);
    if (!p) {
      const idJson = JSON.stringify(e.id);
      const rest = JSON.stringify({
        processor: e.processor,
        ...(e.param === undefined ? {} : { param: e.param }),
        ...(e.payload === undefined ? {} : { payload: e.payload }),
      });
      p = {
        middle: `"scheduleId":${idJson},${rest.slice(1, -1)}`,
        idJson,
        specHash: specHashOf(e),
        stateKey: stateKey(this.group, e.id),
      };
      this.parts.set(e, p);
    }
    return p;
  }

  /** Fires of one batch mostly share their instant: remember the last one converted. */
  private isoOf(ms: number): string {
    if (this.iso.ms !== ms) this.iso = { ms, text: new Date(ms).toISOString() };
    return this.iso.text;
  }
}
