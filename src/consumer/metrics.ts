import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import type { DlqReason } from '../shared/codecs/dlq-record.js';
import { SECONDS_BUCKETS } from '../shared/ops/registry.js';

/** What the gauges read when scraped. */
export interface ConsumerGaugeSource {
  inFlight(): number;
  ready(): boolean;
}

/**
 * The consumer's metrics. `processor` is the name the task resolved to (`unresolved` for records that could not
 * be decoded or name no known processor), so garbage on a topic cannot create series.
 */
export class ConsumerMetrics {
  private readonly started: Counter<'processor'>;
  private readonly finished: Counter<'processor'>;
  private readonly failed: Counter<'processor'>;
  private readonly deadLettered: Counter<'processor' | 'reason'>;
  private readonly retries: Counter<'processor'>;
  private readonly cancelledTotal: Counter<'processor' | 'when'>;
  private readonly skippedTotal: Counter<'processor'>;
  private readonly duration: Histogram<'processor' | 'outcome'>;
  private readonly lagGauge: Gauge<'topic' | 'partition'>;
  private readonly rebalances: Counter;
  private readonly alerts: Counter<'group' | 'schedule' | 'kind'>;

  constructor(registry: Registry, source: ConsumerGaugeSource) {
    const registers = [registry];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]): Counter<L> =>
      new Counter({ name: `taskmanager_consumer_${name}`, help, labelNames, registers });
    this.started = counter('tasks_started_total', 'Task attempts started (retries included)', ['processor']);
    this.finished = counter('tasks_finished_total', 'Tasks finished (FINISHED acknowledged by Kafka)', [
      'processor',
    ]);
    this.failed = counter('tasks_failed_total', 'Task attempts that failed (each retry counts)', [
      'processor',
    ]);
    this.deadLettered = counter(
      'tasks_dead_lettered_total',
      'Tasks sent to the DLQ (DLQ record acknowledged by Kafka), by reason',
      ['processor', 'reason'],
    );
    this.cancelledTotal = counter(
      'tasks_cancelled_total',
      'Tasks ended CANCELLED (event acknowledged by Kafka): when="waiting" never started, "running" stopped',
      ['processor', 'when'],
    );
    this.skippedTotal = counter(
      'tasks_skipped_total',
      'Tasks ended SKIPPED (event acknowledged by Kafka): overlap skip, a run of the same schedule was still going',
      ['processor'],
    );
    this.alerts = new Counter({
      name: 'taskmanager_alerts_total',
      help: 'Alerts raised by this consumer (written with the run they are about): failed, skipped, overrun',
      labelNames: ['group', 'schedule', 'kind'],
      registers,
    });
    this.retries = counter('task_retries_total', 'Attempts scheduled again after a failure', ['processor']);
    this.rebalances = counter(
      'rebalances_total',
      'Times this member joined its group (each rebalance is a join)',
      [],
    );
    this.duration = new Histogram({
      name: 'taskmanager_consumer_task_duration_seconds',
      help: 'Time a processor took for one attempt, by outcome (finished, failed)',
      labelNames: ['processor', 'outcome'],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.lagGauge = new Gauge({
      name: 'taskmanager_consumer_lag',
      help: 'Records of a partition not yet processed: high watermark minus the next offset to process, as of the last batch',
      labelNames: ['topic', 'partition'],
      registers,
    });
    new Gauge({
      name: 'taskmanager_consumer_in_flight_tasks',
      help: 'Tasks whose processor is running now',
      registers,
      collect() {
        this.set(source.inFlight());
      },
    });
    new Gauge({
      name: 'taskmanager_consumer_ready',
      help: '1 when in the group with a live coordinator (as /readyz)',
      registers,
      collect() {
        this.set(source.ready() ? 1 : 0);
      },
    });
  }

  attemptStarted(processor: string): void {
    this.started.inc({ processor });
  }

  attemptFinished(processor: string, durationMs: number): void {
    this.finished.inc({ processor });
    this.duration.observe({ processor, outcome: 'finished' }, durationMs / 1000);
  }

  skipped(processor: string): void {
    this.skippedTotal.inc({ processor });
  }

  cancelled(processor: string, started: boolean): void {
    this.cancelledTotal.inc({ processor, when: started ? 'running' : 'waiting' });
  }

  attemptFailed(processor: string, durationMs: number, retried: boolean): void {
    this.failed.inc({ processor });
    this.duration.observe({ processor, outcome: 'failed' }, durationMs / 1000);
    if (retried) this.retries.inc({ processor });
  }

  deadLetter(processor: string, reason: DlqReason): void {
    this.deadLettered.inc({ processor, reason });
  }

  /** An alert about a run of `task`, labelled like the scheduler's: its scheduler group, schedule and kind. */
  alert(task: { scheduleId: string; scheduler: { group: string } }, kind: string): void {
    this.alerts.inc({ group: task.scheduler.group, schedule: task.scheduleId, kind });
  }

  lag(topic: string, partition: number, records: number): void {
    this.lagGauge.set({ topic, partition: String(partition) }, Math.max(0, records));
  }

  /** A partition moved to another member: its lag is no longer ours to report. */
  forgetLag(): void {
    this.lagGauge.reset();
  }

  joined(): void {
    this.rebalances.inc();
  }
}
