import { randomUUID } from 'node:crypto';
import { AppError, errorMessage } from '../shared/errors.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { KAFKA_SILENT_MS } from '../shared/kafka/index.js';
import { BatchingSender } from '../shared/kafka/index.js';
import type {
  Follower,
  InRecord,
  KafkaClient,
  OutRecord,
  KafkaProducer,
  Placed,
} from '../shared/kafka/index.js';
import type { FollowOptions } from '../shared/kafka/follow.js';
import { OP_HEADER, VERSION_HEADER, WRITER_HEADER } from '../shared/tasks/task-log.js';
import type { TaskLogOutcome } from '../shared/tasks/task-log.js';
import { ApiError } from './problem.js';

/** Throws TOPIC_MISSING for the first of `topics` that does not exist (an operator creates it; not waited for). */
export async function requireTopics(kafka: KafkaClient, topics: string[]): Promise<void> {
  const existing = await kafka.existingTopics(topics);
  for (const t of topics)
    if (!existing.has(t))
      throw new AppError(
        'TOPIC_MISSING',
        `topic ${t} does not exist: create it with scripts/create-topics.sh`,
      );
}

/** A topic this instance materialises: read to its end at start, then followed. */
export interface FollowedTopic {
  topic: string;
  onRecord(r: InRecord): void;
  from: FollowOptions;
}

/** Readiness: every view is built and the broker answered lately. */
export interface StoreHealth {
  ready: boolean;
  reason?: string;
}

export interface KafkaStoreOptions {
  kafka: KafkaClient;
  logger: Logger;
  clock: Clock;
  /** How long a write waits for its record to come back through its view. @default 10000 */
  readBackTimeoutMs?: number;
}

const PROBE_EVERY_MS = 1500;
const PROBE_TIMEOUT_MS = 3000;

/**
 * Kafka as `taskapi`'s only store: the topics it materialises, one producer, and writes that resolve only once the
 * record came back through this instance's own view (read-your-writes), with the outcome the view gave it.
 */
export class KafkaStore {
  /** Put in the `tm-writer` header of every write; views report the outcome of such records to {@link settle}. */
  readonly writerId = `taskapi-${randomUUID()}`;
  private readonly waiters = new Map<string, (o: unknown) => void>();
  /** Outcomes of our records read back before their produce call returned. */
  private readonly early = new Map<string, unknown>();
  private producer: KafkaProducer | undefined;
  /** Sends through {@link producer}: the writes and sends of concurrent requests share produce requests. */
  private sender: BatchingSender | undefined;
  private followers: Follower[] = [];
  private topicsFollowed: string[] = [];
  private built = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private lastProbeOk = 0;
  private probing = false;
  private lastProbeError = 'not probed yet';
  private known = { at: 0, names: new Set<string>() };
  private stopping: Promise<void> | undefined;

  constructor(private readonly o: KafkaStoreOptions) {}

  /** Reads every topic to its end (the rebuild), then follows them; resolves to the time it took, ms. */
  async start(topics: FollowedTopic[]): Promise<number> {
    const t0 = performance.now();
    const { kafka } = this.o;
    this.topicsFollowed = topics.map((t) => t.topic);
    await requireTopics(kafka, this.topicsFollowed);
    try {
      // 8 retries, about 2.5 s: a leader moving (a broker restart, a topic just made) is waited out instead of
      // answered 503 (schemathesis saw "not the leader for that topic-partition" with 3, about 0.1 s); a broker
      // that is down still gets its 503 within seconds.
      this.producer = kafka.producer({ idempotent: true, retries: 8 });
      await this.producer.connect();
      this.sender = new BatchingSender(this.producer);
      for (const t of topics) this.followers.push(await kafka.follow(t.topic, (r) => t.onRecord(r), t.from));
      await Promise.all(this.followers.map((f) => f.caughtUp));
    } catch (err) {
      // A failed attempt leaves nothing running: a retry starts from scratch (with fresh views, see serve.ts).
      await Promise.all(this.followers.map((f) => f.stop()));
      this.followers = [];
      await this.producer?.disconnect().catch(() => undefined);
      this.producer = undefined;
      this.sender = undefined;
      throw err;
    }
    this.built = true;
    this.lastProbeOk = this.o.clock.now();
    this.probeTimer = setInterval(() => void this.probe(), PROBE_EVERY_MS);
    this.probeTimer.unref();
    return performance.now() - t0;
  }

  health(): StoreHealth {
    if (!this.built) return { ready: false, reason: `reading ${this.topicsFollowed.join(', ')}` };
    if (this.o.clock.now() - this.lastProbeOk > KAFKA_SILENT_MS)
      return { ready: false, reason: `Kafka unreachable: ${this.lastProbeError}` };
    return { ready: true };
  }

  /** 503 at once when the broker is known to be down: nothing is sent, so nothing can be half-written. */
  assertWritable(): void {
    const h = this.health();
    if (!h.ready) throw new ApiError(503, `${h.reason}; nothing was written, try again later`);
  }

  /** Whether a topic exists (a positive answer is cached for a minute; a topic created meanwhile is seen at once). */
  async topicExists(topic: string): Promise<boolean> {
    const now = this.o.clock.now();
    if (this.known.names.has(topic) && now - this.known.at < 60_000) return true;
    const found = await this.kafkaCall(() => this.o.kafka.existingTopics([topic]));
    if (!found.has(topic)) return false;
    this.known = { at: now, names: new Set([...this.known.names, topic]) };
    return true;
  }

  /** Produces one record and waits until its view has folded it; resolves to the outcome the view reported. */
  async write<T>(
    topic: string,
    key: string,
    value: Buffer | null,
    headers: Record<string, string>,
  ): Promise<T> {
    this.assertWritable();
    const sender = this.writable();
    const [{ partition, offset }] = (await this.kafkaCall(() =>
      sender.place([{ topic, key, value, headers: { ...headers, [WRITER_HEADER]: this.writerId } }]),
    )) as [Placed];
    const at = `${topic}/${partition}@${offset}`;
    if (this.early.has(at)) {
      const o = this.early.get(at);
      this.early.delete(at);
      return o as T;
    }
    const timeoutMs = this.o.readBackTimeoutMs ?? 10_000;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(at);
        reject(
          new ApiError(
            503,
            `${key} was written to ${at} but not read back within ${timeoutMs} ms; it is stored, and will show once Kafka answers again`,
          ),
        );
      }, timeoutMs);
      this.waiters.set(at, (o) => {
        clearTimeout(timer);
        resolve(o as T);
      });
    });
  }

  /**
   * After a rejected write: appends a copy of the key's current state (`version`), so that the last record of the
   * key, the one compaction keeps, is the accepted state again (see shared/tasks/task-log.ts). Retries while
   * another write slips in between; gives up quietly (a later start repairs what is left).
   */
  async restate(
    topic: string,
    key: string,
    current: () => { value: Buffer | null; version: string } | undefined,
  ): Promise<void> {
    for (let i = 0; i < 5; i++) {
      const state = current();
      if (!state) return;
      const outcome = await this.write<TaskLogOutcome>(topic, key, state.value, {
        [OP_HEADER]: 'repair',
        [VERSION_HEADER]: state.version,
      }).catch((err: unknown) => {
        this.o.logger.warn(
          `repair of ${topic} key ${key} failed (${errorMessage(err)}); retried at next start`,
        );
        return undefined;
      });
      if (outcome === undefined || outcome.kind !== 'rejected') return;
    }
  }

  /** Plain sends (no read-back): task messages and events. */
  async send(records: OutRecord[]): Promise<void> {
    this.assertWritable();
    const sender = this.writable();
    await this.kafkaCall(() => sender.send(records));
  }

  /** A view reports the outcome of a record carrying our writer id. */
  settle(r: InRecord, outcome: unknown): void {
    if (r.headers[WRITER_HEADER] !== this.writerId) return;
    const at = `${r.topic}/${r.partition}@${r.offset}`;
    const waiter = this.waiters.get(at);
    if (waiter) {
      this.waiters.delete(at);
      waiter(outcome);
    } else if (this.built) {
      this.early.set(at, outcome);
      // Bounded: a record whose produce call failed after all (so nobody claims it) is forgotten.
      if (this.early.size > 10_000) this.early.delete(this.early.keys().next().value!);
    }
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.probeTimer);
      await Promise.all(this.followers.map((f) => f.stop()));
      await this.producer?.disconnect().catch(() => undefined);
    })();
    return this.stopping;
  }

  private writable(): BatchingSender {
    if (!this.sender) throw new ApiError(503, 'taskapi is starting: nothing was written');
    return this.sender;
  }

  /** Runs a Kafka call; a failure is a 503 saying nothing was written. */
  private async kafkaCall<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (err) {
      if (err instanceof ApiError) throw err;
      this.lastProbeError = errorMessage(err);
      throw new ApiError(
        503,
        `Kafka unreachable (${errorMessage(err)}): nothing was written, try again later`,
      );
    }
  }

  private async probe(): Promise<void> {
    // One at a time: with the broker gone a probe takes its connection timeouts, and they must not pile up.
    if (this.probing || this.topicsFollowed.length === 0) return;
    this.probing = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: a call that hangs on a connection the broker restart left half-open must not stop every later
      // probe (readiness would then stay false for good).
      await Promise.race([
        this.o.kafka.endOffsets(this.topicsFollowed[0]!),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)),
            PROBE_TIMEOUT_MS,
          );
        }),
      ]);
      this.lastProbeOk = this.o.clock.now();
    } catch (err) {
      this.lastProbeError = errorMessage(err);
    } finally {
      clearTimeout(timer);
      this.probing = false;
    }
  }
}

/**
 * Every instance's safety net for rejected records whose writer never appended the repair (it crashed, or its
 * read-back timed out): keys still unrepaired at two sweeps in a row are restated. Two in a row, so the writer's
 * own repair, milliseconds after the rejection, is not duplicated by every instance.
 */
export class RepairSweeper {
  private previous = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly views: Array<{ unrepaired: ReadonlySet<string>; repair(key: string): Promise<void> }>,
    everyMs = 10_000,
  ) {
    this.timer = setInterval(() => this.sweep(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sweep(): void {
    const now = new Set<string>();
    this.views.forEach((v, i) => {
      for (const key of v.unrepaired) {
        const tagged = `${i}\n${key}`;
        now.add(tagged);
        if (this.previous.has(tagged)) void v.repair(key).catch(() => undefined);
      }
    });
    this.previous = now;
  }
}
