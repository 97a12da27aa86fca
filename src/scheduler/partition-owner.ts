import type { Clock } from '../shared/clock.js';
import { sleep } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Origin } from '../shared/messages.js';
import { isFencedError } from '../shared/kafka/index.js';
import type { KafkaClient, TaskProducer } from '../shared/kafka/index.js';
import type { Fire } from './fire-loop.js';
import { FireEncoder } from './task-records.js';

export type OwnerState = 'starting' | 'active' | 'fenced' | 'stopped';

export interface PartitionOwnerOptions {
  kafka: KafkaClient;
  group: string;
  partition: number;
  clock: Clock;
  logger: Logger;
  scheduler: Origin & { group: string };
  /** Fires per transaction. @default 5000 */
  maxBatch?: number;
  onAcked?(fires: readonly Fire[], ackedAtMs: number): void;
  /** The producer was fenced by a newer owner: stop firing this partition's entries. */
  onFenced(partition: number): void;
}

/**
 * Publishes the fires of the entries of one state partition, exactly once. Its transactional id is derived from
 * the group and the partition, so whoever owns the partition next fences it. Each transaction holds the task
 * messages, their SCHEDULED events and the new state records of the fires it carries; a read_committed reader
 * sees all of them or none. Fires that come due while a transaction is in flight go in the next one.
 */
export class PartitionOwner {
  private producer: TaskProducer;
  private queue: Fire[] = [];
  private pumping: Promise<void> | undefined;
  private failures = 0;
  state: OwnerState = 'starting';
  private readonly stopSignal = new AbortController();
  private readonly encoder: FireEncoder;

  constructor(private readonly o: PartitionOwnerOptions) {
    this.producer = o.kafka.producer({ transactionalId: transactionalIdOf(o.group, o.partition) });
    this.encoder = new FireEncoder(o.group, o.partition, o.scheduler);
  }

  /** Connects and fences any previous owner of this partition. Must finish before the partition's state is read. */
  async fence(): Promise<void> {
    await this.producer.connect();
    await this.producer.fence();
  }

  /** Starts publishing (after the state was read and missed fires computed). */
  activate(): void {
    if (this.state !== 'starting') return;
    this.state = 'active';
    this.kick();
  }

  enqueue(fires: readonly Fire[]): void {
    if (this.state === 'fenced' || this.state === 'stopped') return;
    for (const f of fires) this.queue.push(f);
    if (this.state === 'active') this.kick();
  }

  /** Publishes what is queued (within the deadline), then disconnects. Resolves to the fires left unpublished. */
  async stop({ deadlineMs }: { deadlineMs: number }): Promise<number> {
    const deadline = this.o.clock.now() + deadlineMs;
    while (
      this.state === 'active' &&
      (this.queue.length > 0 || this.pumping) &&
      this.o.clock.now() < deadline
    ) {
      await Promise.race([this.pumping, sleep(this.o.clock, 50)]);
    }
    const wasActive = this.state === 'active' || this.state === 'starting';
    if (wasActive) this.state = 'stopped';
    this.stopSignal.abort();
    await this.pumping?.catch(() => undefined);
    await this.producer.disconnect().catch(() => undefined);
    return this.queue.length;
  }

  private kick(): void {
    if (!this.pumping) this.pumping = this.pump().finally(() => (this.pumping = undefined));
  }

  private async pump(): Promise<void> {
    while (this.state === 'active' && this.queue.length > 0) {
      const batch = this.queue.slice(0, this.o.maxBatch ?? 5000);
      try {
        await this.producer.sendInTransaction(this.encoder.records(batch, this.o.clock.now()));
        this.queue = this.queue.slice(batch.length);
        this.o.onAcked?.(batch, this.o.clock.now());
        if (this.failures > 0)
          this.o.logger.info(`partition ${this.o.partition}: publishing again`, {
            queued: this.queue.length,
          });
        this.failures = 0;
      } catch (err) {
        if (isFencedError(err)) {
          this.state = 'fenced';
          this.o.logger.warn(
            `state partition ${this.o.partition}: fenced by a newer owner; this instance stops firing its entries ` +
              `(${this.queue.length} queued fires are the new owner's to publish)`,
          );
          this.queue = [];
          this.o.onFenced(this.o.partition);
          return;
        }
        this.failures++;
        const delay = Math.min(100 * 2 ** Math.min(this.failures - 1, 5), 2000);
        this.o.logger.error(
          `state partition ${this.o.partition}: cannot publish (${errorMessage(err)}); ` +
            `${this.queue.length} fires queued, retrying in ${delay} ms`,
          { attempt: this.failures },
        );
        try {
          await sleep(this.o.clock, delay, this.stopSignal.signal);
        } catch {
          return;
        }
      }
    }
  }
}

/** One transactional id per (group, state partition): the next owner of the partition fences the previous one. */
export function transactionalIdOf(group: string, partition: number): string {
  return `${group}/state-${partition}`;
}
