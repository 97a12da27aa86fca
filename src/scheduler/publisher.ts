import type { Clock } from '../shared/clock.js';
import { sleep } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Origin } from '../shared/messages.js';
import type { OutRecord, TaskProducer } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';
import { fireRecords, taskMessageOf } from './task-records.js';

export interface PublisherOptions {
  producer: TaskProducer;
  clock: Clock;
  logger: Logger;
  scheduler: Origin & { group: string };
  /** Fires per produce request. @default 5000 */
  maxBatch?: number;
  /** Called after each acknowledged batch (metrics, benchmarks). */
  onAcked?(fires: readonly Fire[], ackedAtMs: number): void;
}

/**
 * Queues fires and sends them in batches. A broker that is down (at start-up or later) is retried with capped
 * exponential backoff; fires that come due meanwhile wait in the queue and go out when it is back, late and
 * marked so by `firedAt`. Nothing is dropped.
 */
export class Publisher {
  private queue: Fire[] = [];
  private connected = false;
  private pumping: Promise<void> | undefined;
  private readonly stopping = new AbortController();
  private readonly maxBatch: number;
  private failures = 0;

  constructor(private readonly o: PublisherOptions) {
    this.maxBatch = o.maxBatch ?? 5000;
  }

  get pending(): number {
    return this.queue.length;
  }

  enqueue(fires: readonly Fire[]): void {
    for (const f of fires) this.queue.push(f);
    if (!this.pumping) this.pumping = this.pump().finally(() => (this.pumping = undefined));
  }

  /** Connects, retrying until it works or stop() is called; fires queue up meanwhile. */
  start(): void {
    if (!this.pumping) this.pumping = this.pump().finally(() => (this.pumping = undefined));
  }

  /** Sends what is queued, for at most `deadlineMs`, then disconnects. Returns how many fires were left unsent. */
  async stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    const deadline = this.o.clock.now() + deadlineMs;
    while ((this.queue.length > 0 || this.pumping) && this.o.clock.now() < deadline) {
      await Promise.race([this.pumping, sleep(this.o.clock, 50)]);
      if (!this.pumping && this.queue.length > 0) this.start();
    }
    this.stopping.abort();
    await this.pumping?.catch(() => undefined);
    if (this.connected) await this.o.producer.disconnect().catch(() => undefined);
    this.connected = false;
    return this.queue.length;
  }

  private async pump(): Promise<void> {
    while (!this.stopping.signal.aborted) {
      try {
        if (!this.connected) {
          await this.o.producer.connect();
          this.connected = true;
          if (this.failures > 0)
            this.o.logger.info('broker reachable again; sending queued fires', { queued: this.queue.length });
          this.failures = 0;
        }
        if (this.queue.length === 0) return;
        await this.sendOnce();
        this.failures = 0;
      } catch (err) {
        this.failures++;
        const delay = Math.min(100 * 2 ** Math.min(this.failures - 1, 6), 2000);
        this.o.logger.error(
          `cannot publish to Kafka (${errorMessage(err)}); ${this.queue.length} fires queued, retrying in ${delay} ms`,
          { attempt: this.failures },
        );
        if (this.failures >= 3 && this.connected) {
          // A connection kafkajs gave up on is rebuilt from scratch.
          await this.o.producer.disconnect().catch(() => undefined);
          this.connected = false;
        }
        try {
          await sleep(this.o.clock, delay, this.stopping.signal);
        } catch {
          return;
        }
      }
    }
  }

  private async sendOnce(): Promise<void> {
    const batch = this.queue.slice(0, this.maxBatch);
    const firedAt = this.o.clock.now();
    const records: OutRecord[] = [];
    for (const fire of batch) {
      const task = taskMessageOf(fire, firedAt, this.o.scheduler);
      records.push(...fireRecords(task, fire.entry.topic, this.o.scheduler));
    }
    await this.o.producer.send(records);
    // Only what was acknowledged leaves the queue; a failed send keeps the batch at the head, in order.
    this.queue = this.queue.slice(batch.length);
    this.o.onAcked?.(batch, this.o.clock.now());
  }
}
