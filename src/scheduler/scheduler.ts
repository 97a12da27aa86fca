import { hostname } from 'node:os';
import type { Clock } from '../shared/clock.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import type { Logger } from '../shared/logger.js';
import { FireLoop } from './fire-loop.js';
import type { Fire } from './fire-loop.js';
import { Publisher } from './publisher.js';

export interface SchedulerOptions {
  kafka: KafkaClient;
  entries: readonly ScheduleEntry[];
  /** Scheduler group, written into every task message. */
  group: string;
  clock: Clock;
  logger: Logger;
  /** Called after each acknowledged batch of fires (benchmarks, metrics). */
  onAcked?(fires: readonly Fire[], ackedAtMs: number): void;
}

/** Fires the entries of one schedule file into Kafka: one timer loop feeding one batching publisher. */
export class Scheduler {
  private readonly loop: FireLoop;
  private readonly publisher: Publisher;
  private stopping: Promise<number> | undefined;

  constructor(private readonly o: SchedulerOptions) {
    const origin = { host: hostname(), pid: process.pid, group: o.group };
    this.publisher = new Publisher({
      producer: o.kafka.producer({ idempotent: true }),
      clock: o.clock,
      logger: o.logger,
      scheduler: origin,
      onAcked: (fires, at) => {
        for (const f of fires) {
          o.logger.debug(`fired ${f.entry.id}`, {
            scheduleId: f.entry.id,
            scheduledFor: new Date(f.scheduledFor).toISOString(),
            ackLagMs: at - f.scheduledFor,
          });
        }
        o.onAcked?.(fires, at);
      },
    });
    this.loop = new FireLoop({
      clock: o.clock,
      logger: o.logger,
      onFires: (fires) => this.publisher.enqueue(fires),
    });
  }

  start(): void {
    this.publisher.start();
    for (const e of this.o.entries) this.loop.add(e);
    this.loop.start();
    const enabled = this.o.entries.filter((e) => e.enabled).length;
    this.o.logger.info(`scheduler started: ${enabled} of ${this.o.entries.length} entries armed`, {
      group: this.o.group,
    });
  }

  /** Stops firing, sends what is queued (within the deadline), disconnects. Idempotent. Resolves to unsent fires. */
  stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    this.stopping ??= (async () => {
      this.loop.stop();
      const unsent = await this.publisher.stop({ deadlineMs });
      if (unsent > 0) this.o.logger.error(`stopped with ${unsent} fires not published (broker unreachable)`);
      else this.o.logger.info('scheduler stopped; every fire was published');
      return unsent;
    })();
    return this.stopping;
  }
}
