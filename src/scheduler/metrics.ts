import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { SECONDS_BUCKETS } from '../shared/ops/registry.js';
import type { Fire } from './fire-loop.js';
import { lateAlertOf } from './fire-alerts.js';

/** A fire handed over later than this after its instant counts as late. */
export const LATE_FIRE_MS = 1000;

/** What the gauges read when scraped. */
export interface SchedulerGaugeSource {
  ownedPartitions(): number;
  schedules(): { armed: number; paused: number; disabled: number };
  queuedFires(): number;
  ready(): boolean;
  /** API task definitions held (those of the owned state partitions). */
  apiDefinitions(): number;
}

/**
 * The scheduler's metrics. Counters carry the schedule Id (a few series per schedule); the lag histograms carry
 * only the group, as per-schedule histograms would be thousands of series per schedule file.
 */
export class SchedulerMetrics {
  private readonly fires: Counter<'group' | 'schedule'>;
  private readonly late: Counter<'group' | 'schedule'>;
  private readonly misfires: Counter<'group' | 'schedule' | 'outcome'>;
  private readonly triggers: Counter<'group' | 'schedule'>;
  private readonly backfills: Counter<'group' | 'schedule'>;
  private readonly publishErrors: Counter<'group' | 'partition'>;
  private readonly alerts: Counter<'group' | 'schedule' | 'kind'>;
  private readonly fireLag: Histogram<'group'>;
  private readonly ackLag: Histogram<'group'>;

  constructor(
    registry: Registry,
    private readonly group: string,
    source: SchedulerGaugeSource,
  ) {
    const registers = [registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
      new Counter({ name: `taskmanager_scheduler_${name}`, help, labelNames, registers });
    const histogram = (name: string, help: string): Histogram<'group'> =>
      new Histogram({
        name: `taskmanager_scheduler_${name}`,
        help,
        labelNames: ['group'],
        buckets: SECONDS_BUCKETS,
        registers,
      });
    this.fires = counter(
      'fires_total',
      'Fires published (committed to Kafka), per schedule; manual triggers included',
      ['group', 'schedule'],
    );
    this.late = counter(
      'late_fires_total',
      `Fires handed to the producer more than ${LATE_FIRE_MS} ms after their instant`,
      ['group', 'schedule'],
    );
    this.misfires = counter(
      'misfires_total',
      'Fire times missed while no instance owned the schedule: caught_up (fired late per Misfire) or dropped (older than MisfireWindowSeconds, or Misfire skip)',
      ['group', 'schedule', 'outcome'],
    );
    this.triggers = counter('triggers_total', 'Manual fires (taskscheduler trigger) published', [
      'group',
      'schedule',
    ]);
    this.backfills = counter(
      'backfilled_total',
      'Instants published by a backfill (taskscheduler backfill, POST /api/v1/tasks/{id}/backfill)',
      ['group', 'schedule'],
    );
    this.alerts = new Counter({
      name: 'taskmanager_alerts_total',
      help: 'Alerts raised by this scheduler (written in one transaction with what they are about): late, missed, deadline',
      labelNames: ['group', 'schedule', 'kind'],
      registers,
    });
    this.publishErrors = counter(
      'publish_errors_total',
      'Transactions that failed and were retried, per state partition',
      ['group', 'partition'],
    );
    this.fireLag = histogram(
      'fire_lag_seconds',
      'Time a fire was handed to the producer minus its scheduled instant',
    );
    this.ackLag = histogram(
      'ack_lag_seconds',
      'Time the broker acknowledged a fire (transaction committed) minus its scheduled instant',
    );
    const gauge = (name: string, help: string, read: () => Array<[Record<string, string>, number]>): void => {
      new Gauge({
        name: `taskmanager_scheduler_${name}`,
        help,
        labelNames: ['group', 'state'],
        registers,
        collect() {
          for (const [labels, value] of read()) this.set({ group, ...labels }, value);
        },
      });
    };
    gauge('owned_partitions', 'State partitions this instance owns (fires their schedules)', () => [
      [{}, source.ownedPartitions()],
    ]);
    gauge(
      'schedules',
      'Schedules of the owned partitions by state: armed, paused (taskscheduler pause), disabled (Enabled false)',
      () => Object.entries(source.schedules()).map(([state, n]) => [{ state }, n]),
    );
    gauge(
      'api_definitions',
      'Task definitions created over HTTP that this instance holds: those of the state partitions it owns',
      () => [[{}, source.apiDefinitions()]],
    );
    gauge('queued_fires', 'Fires due and not yet committed to Kafka', () => [[{}, source.queuedFires()]]);
    gauge('ready', '1 when in the group and firing every partition it was assigned (as /readyz)', () => [
      [{}, source.ready() ? 1 : 0],
    ]);
  }

  acked(fires: readonly Fire[], firedAtMs: number, ackedAtMs: number): void {
    for (const f of fires) {
      const labels = { group: this.group, schedule: f.entry.id };
      this.fires.inc(labels);
      // A backfilled instant is of the past on purpose: neither a trigger nor a late fire.
      if (f.backfill) {
        this.backfills.inc(labels);
        continue;
      }
      if (f.manual) this.triggers.inc(labels);
      // Lag from when the fire was due: a jitter delay is intended, not late.
      const due = f.dueAt ?? f.scheduledFor;
      const lag = firedAtMs - due;
      if (lag > LATE_FIRE_MS) this.late.inc(labels);
      if (lateAlertOf(f, firedAtMs, this.group)) this.alerts.inc({ ...labels, kind: 'late' });
      this.fireLag.observe({ group: this.group }, lag / 1000);
      this.ackLag.observe({ group: this.group }, (ackedAtMs - due) / 1000);
    }
  }

  /** An alert this scheduler raised, once its transaction committed. */
  alerted(schedule: string, kind: string): void {
    this.alerts.inc({ group: this.group, schedule, kind });
  }

  misfired(schedule: string, outcome: 'caught_up' | 'dropped', n = 1): void {
    if (n > 0) this.misfires.inc({ group: this.group, schedule, outcome }, n);
  }

  publishFailed(partition: number): void {
    this.publishErrors.inc({ group: this.group, partition: String(partition) });
  }
}
