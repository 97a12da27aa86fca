import type { ScheduleEntry } from '../shared/config/schema.js';
import { fastTaskValue, preEncodeTask, taskRecordOf } from '../shared/codecs/task-message.js';
import type { PreEncodedTask, SchedulerOrigin } from '../shared/codecs/task-message.js';
import { fastScheduledValue, scheduledBatchRecords, statusRecordOf } from '../shared/codecs/task-event.js';
import { deadlineRecord, fastStateValue, specHashOf, stateRecord } from '../shared/codecs/scheduler-state.js';
import type { OutRecord } from '../shared/kafka/index.js';
import { NO_TRACING, TRACEPARENT_HEADER } from '../shared/tracing.js';
import type { TraceSpan, Tracing } from '../shared/tracing.js';
import type { Fire } from './fire-loop.js';
import { lateAlertRecords, MissedAlerts } from './fire-alerts.js';
import { consumerAlerts } from '../shared/schedule/alerts.js';
import { deadlineTimerOf } from './deadlines.js';

/** What never changes between two fires of one entry, serialized once. */
interface EntryParts {
  task: PreEncodedTask;
  specHash: string;
}

/**
 * How the SCHEDULED events of a transaction's fires are written: `batched`, all of them in one record per
 * `SCHEDULED_BATCH_MAX` fires (a `ScheduledBatch`: readers of this release expand it; those of earlier releases skip it, so
 * their run history learns of a run when it starts), or `per-task`, one record each (key = taskId), as earlier releases did.
 * With tracing on, each fire's event is its own record whatever this says: it carries the fire's traceparent.
 */
export type ScheduledEventsForm = 'batched' | 'per-task';

export const SCHEDULED_EVENTS_FORMS: readonly ScheduledEventsForm[] = ['batched', 'per-task'];

/**
 * Builds the records of a batch of fires (docs/messages-and-topics.md#task-message): per fire the task message (key = schedule Id) and its
 * SCHEDULED event (its own record, key = taskId, or in a batch record with the other fires': see
 * {@link ScheduledEventsForm}), its alerts' records (a late alert, a deadline timer), and per entry one state
 * record for its latest fire (manual fires move no state).
 * This runs on the firing path for every fire, so it uses the codecs' fast paths: the parts of an entry's JSON that
 * never change are serialized once per entry and the rest is concatenated; the result is byte for byte what the
 * codecs' typed encoders give for the same fire (test/unit/codecs.test.ts). With tracing on, each fire also starts
 * its `fire` span and, under it, its `publish` span, whose context the task record and the SCHEDULED event carry as
 * their `traceparent` header (docs/operations.md#traces); with tracing off nothing of that is done.
 */
export class FireEncoder {
  private readonly parts = new WeakMap<ScheduleEntry, EntryParts>();
  /** Instants a takeover's misfire policy dropped, alerted with the entry's next fire. */
  readonly missed = new MissedAlerts();
  private readonly schedulerJson: string;
  private readonly byJson: string;
  private iso = { ms: NaN, text: '' };

  constructor(
    private readonly group: string,
    private readonly partition: number,
    private readonly scheduler: SchedulerOrigin,
    private readonly tracing: Tracing = NO_TRACING,
    private readonly scheduledEvents: ScheduledEventsForm = 'batched',
  ) {
    this.schedulerJson = JSON.stringify(scheduler);
    this.byJson = JSON.stringify({ ...scheduler, role: 'scheduler' });
  }

  /**
   * @param spans with tracing on, receives each fire's `fire` and `publish` spans, for the caller to end once the
   *   transaction is committed (or failed).
   */
  records(fires: readonly Fire[], firedAtMs: number, spans?: TraceSpan[]): OutRecord[] {
    const firedAt = new Date(firedAtMs).toISOString();
    const out: OutRecord[] = [];
    const latest = new Map<ScheduleEntry, Fire>();
    const traced = spans !== undefined && this.tracing.enabled;
    const batched: Array<[string, string]> | undefined =
      this.scheduledEvents === 'batched' && !traced ? [] : undefined;
    for (const fire of fires) {
      const { task } = this.partsOf(fire.entry);
      const scheduledFor = this.isoOf(fire.scheduledFor);
      const taskId = `${fire.entry.id}@${scheduledFor}`;
      const taskIdJson = JSON.stringify(taskId);
      const taskRec = taskRecordOf(
        fire.entry.topic,
        { taskId, scheduleId: fire.entry.id, scheduledFor, overlap: task.overlap },
        fastTaskValue(
          task,
          taskIdJson,
          scheduledFor,
          firedAt,
          this.schedulerJson,
          fire.dueAt === undefined ? undefined : new Date(fire.dueAt).toISOString(),
        ),
      );
      if (batched) {
        batched.push([taskIdJson, task.idJson]);
        out.push(taskRec);
      } else {
        const event = statusRecordOf(
          taskId,
          fastScheduledValue(taskIdJson, task.idJson, firedAt, this.byJson),
        );
        if (traced) {
          const traceparent = this.traceFire(fire, taskId, firedAtMs, spans);
          (taskRec.headers ??= {})[TRACEPARENT_HEADER] = traceparent;
          (event.headers ??= {})[TRACEPARENT_HEADER] = traceparent;
        }
        out.push(taskRec, event);
      }
      if (fire.entry.alerts) {
        out.push(...lateAlertRecords(fire, firedAtMs, this.scheduler));
        // Its deadline timer, armed with the fire: whoever owns the partition next finds it (deadlines.ts).
        const timer = deadlineTimerOf(fire, firedAtMs);
        if (timer) out.push(deadlineRecord(this.group, this.partition, timer));
      }
      if (fire.manual) continue;
      const prev = latest.get(fire.entry);
      if (!prev || prev.scheduledFor < fire.scheduledFor) latest.set(fire.entry, fire);
    }
    for (const [entry, f] of latest) {
      // An entry with MaxRuns counts its runs in the record, as of its latest fire (fireOf numbers them).
      const value = fastStateValue(this.isoOf(f.scheduledFor), this.partsOf(entry).specHash, firedAt, f.run);
      out.push(stateRecord(this.group, entry.id, this.partition, value));
    }
    if (batched?.length) out.push(...scheduledBatchRecords(firedAt, this.byJson, batched));
    out.push(...this.missed.records(fires, firedAtMs, this.scheduler));
    return out;
  }

  /** Starts a fire's `fire` span (from when it was due) and its `publish` span; answers the latter's traceparent. */
  private traceFire(fire: Fire, taskId: string, firedAtMs: number, spans: TraceSpan[]): string {
    const { entry } = fire;
    const due = fire.manual ? firedAtMs : (fire.dueAt ?? fire.scheduledFor);
    const fireSpan = this.tracing.startSpan('fire', {
      startTimeMs: Math.min(due, firedAtMs),
      attributes: {
        'taskmanager.task_id': taskId,
        'taskmanager.schedule_id': entry.id,
        'taskmanager.processor': entry.processor,
        'taskmanager.scheduler_group': this.group,
        'taskmanager.state_partition': this.partition,
        'taskmanager.manual': fire.manual === true,
        'taskmanager.fire_lag_ms': Math.max(0, firedAtMs - due),
      },
    });
    const publish = this.tracing.startSpan('publish', {
      parent: fireSpan,
      kind: 'producer',
      startTimeMs: firedAtMs,
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'send',
        'messaging.destination.name': entry.topic,
        'messaging.kafka.message.key': entry.id,
        'taskmanager.task_id': taskId,
      },
    });
    spans.push(publish, fireSpan);
    return publish.traceparent;
  }

  private partsOf(e: ScheduleEntry): EntryParts {
    let p = this.parts.get(e);
    if (!p) {
      p = {
        task: preEncodeTask({
          scheduleId: e.id,
          processor: e.processor,
          param: e.param,
          payload: e.payload,
          overlap: e.overlap,
          alerts: consumerAlerts(e.alerts),
        }),
        specHash: specHashOf(e),
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
