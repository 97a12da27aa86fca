import { randomUUID } from 'node:crypto';
import { errorMessage } from '../shared/errors.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import type { Follower, InRecord, KafkaClient, TaskProducer } from '../shared/kafka/index.js';
import { hostname } from 'node:os';
import { encodeJson, EVENTS_TOPIC, manualFireInstant, taskHeaders, taskIdFor } from '../shared/messages.js';
import type { StatusEvent, TaskMessage } from '../shared/messages.js';
import { TASKS_TOPIC } from '../shared/tasks/definition.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { BASE_HEADER, OP_HEADER, VERSION_HEADER, WRITER_HEADER } from '../shared/tasks/task-log.js';
import type { TaskLogOutcome, TaskOp } from '../shared/tasks/task-log.js';
import { ApiError } from './problem.js';
import { TaskView } from './task-view.js';
import type { ViewTask } from './task-view.js';

export interface TaskStoreOptions {
  kafka: KafkaClient;
  logger: Logger;
  clock: Clock;
  /** How far back run history is read from taskmanager.events at start. @default 24 h */
  historyMs?: number;
  /** How long a write waits for its record to come back through the view. @default 10000 */
  readBackTimeoutMs?: number;
}

/** The answer to a write: the task as now stored, or null after a delete. */
export interface WriteResult {
  task: ViewTask | null;
}

/** Readiness: the view is built and the broker answered lately. */
export interface StoreHealth {
  ready: boolean;
  reason?: string;
}

const PROBE_EVERY_MS = 1500;
/** Like the scheduler's heartbeat rule: no answer from Kafka for this long and the instance is not ready. */
const PROBE_STALE_MS = 5000;

/**
 * Kafka-backed task storage for one `taskapi` instance: follows `taskmanager.tasks` and `taskmanager.events` into a
 * {@link TaskView}, and writes definitions so that a write returns only once this instance's view has read it back
 * (read-your-writes), with its outcome under the topic's write rules: a create of an existing id, or a change based
 * on a version that is no longer current, answers 409 whichever instance raced it.
 */
export class TaskStore {
  readonly view: TaskView;
  private readonly writerId = `taskapi-${randomUUID()}`;
  private readonly waiters = new Map<string, (o: TaskLogOutcome) => void>();
  /** Outcomes of our records read back before their produce call returned. */
  private readonly early = new Map<string, TaskLogOutcome>();
  private producer: TaskProducer | undefined;
  private followers: Follower[] = [];
  private built = false;
  private rebuildMs: number | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private lastProbeOk = 0;
  private probing = false;
  private lastProbeError = 'not probed yet';
  private topics = { at: 0, names: new Set<string>() };
  private stopping: Promise<void> | undefined;

  constructor(private readonly o: TaskStoreOptions) {
    this.view = new TaskView(o.logger, this.writerId, (r, outcome) => this.settle(r, outcome));
  }

  /** Reads both topics to their end (the rebuild), then follows them. */
  async start(): Promise<void> {
    const t0 = performance.now();
    const { kafka } = this.o;
    const existing = await kafka.existingTopics([TASKS_TOPIC, EVENTS_TOPIC]);
    for (const t of [TASKS_TOPIC, EVENTS_TOPIC])
      if (!existing.has(t))
        throw new Error(`topic ${t} does not exist: create it with scripts/create-topics.sh`);
    this.producer = kafka.producer({ idempotent: true, retries: 3 });
    await this.producer.connect();
    this.followers.push(
      await kafka.follow(TASKS_TOPIC, (r) => this.view.onTaskRecord(r), { fromBeginning: true }),
      await kafka.follow(EVENTS_TOPIC, (r) => this.view.onEventRecord(r), {
        fromTimestamp: this.o.clock.now() - (this.o.historyMs ?? 24 * 3600_000),
      }),
    );
    await Promise.all(this.followers.map((f) => f.caughtUp));
    this.view.seal();
    this.built = true;
    this.rebuildMs = performance.now() - t0;
    this.lastProbeOk = this.o.clock.now();
    this.o.logger.info(
      `view rebuilt from ${TASKS_TOPIC} and ${EVENTS_TOPIC}: ${this.view.size} task(s) in ${Math.round(this.rebuildMs)} ms`,
    );
    this.probeTimer = setInterval(() => void this.probe(), PROBE_EVERY_MS);
    this.probeTimer.unref();
    for (const id of [...this.view.unrepaired]) void this.repair(id).catch(() => undefined);
  }

  get rebuildTimeMs(): number | undefined {
    return this.rebuildMs;
  }

  health(): StoreHealth {
    if (!this.built) return { ready: false, reason: `reading ${TASKS_TOPIC} and ${EVENTS_TOPIC}` };
    if (this.o.clock.now() - this.lastProbeOk > PROBE_STALE_MS)
      return { ready: false, reason: `Kafka unreachable: ${this.lastProbeError}` };
    return { ready: true };
  }

  /** 503 at once when the broker is known to be down: nothing is sent, so nothing can be half-written. */
  assertWritable(): void {
    const h = this.health();
    if (!h.ready) throw new ApiError(503, `${h.reason}; nothing was written, try again later`);
  }

  /** Whether a task topic exists (cached for 10 s; a topic created meanwhile is seen at once). */
  async topicExists(topic: string): Promise<boolean> {
    const now = this.o.clock.now();
    if (this.topics.names.has(topic) && now - this.topics.at < 60_000) return true;
    const found = await this.kafkaCall(() => this.o.kafka.existingTopics([topic]));
    if (found.has(topic)) {
      this.topics = { at: now, names: new Set([...this.topics.names, topic]) };
      return true;
    }
    return false;
  }

  create(def: TaskDefinition): Promise<WriteResult> {
    return this.write(def.id, encodeJson(def), 'create');
  }

  /** Replaces the definition the client saw as `base`. */
  update(def: TaskDefinition, base: string): Promise<WriteResult> {
    return this.write(def.id, encodeJson(def), 'update', base);
  }

  remove(id: string, base: string): Promise<WriteResult> {
    return this.write(id, null, 'delete', base);
  }

  /**
   * Fires a task once now, outside its schedule: its task message and SCHEDULED event, straight to Kafka (no
   * scheduler needed; like `taskscheduler trigger`, the taskId's instant is never a whole second).
   */
  async fireNow(def: TaskDefinition): Promise<string> {
    this.assertWritable();
    const producer = this.producer;
    if (!producer) throw new ApiError(503, 'taskapi is starting: nothing was written');
    const nowMs = this.o.clock.now();
    const at = new Date(manualFireInstant(nowMs)).toISOString();
    const taskId = taskIdFor(def.id, Date.parse(at));
    const origin = { host: hostname(), pid: process.pid };
    const task: TaskMessage = {
      v: 1,
      taskId,
      scheduleId: def.id,
      processor: def.processor,
      ...(def.param === undefined ? {} : { param: def.param }),
      ...(def.payload === undefined ? {} : { payload: def.payload }),
      scheduledFor: at,
      firedAt: new Date(nowMs).toISOString(),
      scheduler: { ...origin, group: def.group },
    };
    const event: StatusEvent = {
      v: 1,
      taskId,
      scheduleId: def.id,
      status: 'SCHEDULED',
      at: task.firedAt,
      attempt: 0,
      by: { ...origin, role: 'api' },
    };
    await this.kafkaCall(() =>
      producer.send([
        { topic: def.topic, key: def.id, value: encodeJson(task), headers: taskHeaders(task) },
        { topic: EVENTS_TOPIC, key: taskId, value: encodeJson(event), headers: { 'task-id': taskId } },
      ]),
    );
    return taskId;
  }

  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      clearInterval(this.probeTimer);
      await Promise.all(this.followers.map((f) => f.stop()));
      await this.producer?.disconnect().catch(() => undefined);
    })();
    return this.stopping;
  }

  private async write(id: string, value: Buffer | null, op: TaskOp, base?: string): Promise<WriteResult> {
    this.assertWritable();
    const outcome = await this.send(id, value, {
      [OP_HEADER]: op,
      ...(base === undefined ? {} : { [BASE_HEADER]: base }),
    });
    if (outcome.kind === 'rejected') {
      await this.repair(id);
      throw new ApiError(409, conflictMessage(id, op, outcome.reason));
    }
    return { task: this.view.get(id) ?? null };
  }

  /** Restates the key's current state after a rejected record, until a restatement is itself accepted. */
  private async repair(id: string): Promise<void> {
    for (let i = 0; i < 5 && this.view.unrepaired.has(id); i++) {
      const state = this.view.keyState(id);
      if (!state) return;
      const current = this.view.get(id);
      const outcome = await this.send(id, current ? encodeJson(current.def) : null, {
        [OP_HEADER]: 'repair',
        [VERSION_HEADER]: state.version,
      }).catch((err: unknown) => {
        this.o.logger.warn(`repair of task ${id} failed (${errorMessage(err)}); retried at next start`, {
          taskId: id,
        });
        return undefined;
      });
      if (outcome === undefined || outcome.kind !== 'rejected') return;
    }
  }

  /** Produces one record and waits until the view has folded it; resolves to its outcome there. */
  private async send(
    id: string,
    value: Buffer | null,
    headers: Record<string, string>,
  ): Promise<TaskLogOutcome> {
    const producer = this.producer;
    if (!producer) throw new ApiError(503, 'taskapi is starting: nothing was written');
    const { partition, offset } = await this.kafkaCall(() =>
      producer.sendOne({
        topic: TASKS_TOPIC,
        key: id,
        value,
        headers: { ...headers, [WRITER_HEADER]: this.writerId },
      }),
    );
    const key = `${partition}@${offset}`;
    const early = this.early.get(key);
    if (early) {
      this.early.delete(key);
      return early;
    }
    return new Promise<TaskLogOutcome>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(key);
        reject(
          new ApiError(
            503,
            `task ${id} was written to ${TASKS_TOPIC}/${key} but not read back within ${this.o.readBackTimeoutMs ?? 10_000} ms; it is stored, and will show once Kafka answers again`,
          ),
        );
      }, this.o.readBackTimeoutMs ?? 10_000);
      this.waiters.set(key, (o) => {
        clearTimeout(timer);
        resolve(o);
      });
    });
  }

  private settle(r: InRecord, outcome: TaskLogOutcome): void {
    const key = `${r.partition}@${r.offset}`;
    const waiter = this.waiters.get(key);
    if (waiter) {
      this.waiters.delete(key);
      waiter(outcome);
    } else if (this.built) {
      this.early.set(key, outcome);
      // Bounded: a record whose produce call failed after all (so nobody claims it) is forgotten.
      if (this.early.size > 10_000) this.early.delete(this.early.keys().next().value!);
    }
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
    if (this.probing) return;
    this.probing = true;
    try {
      await this.o.kafka.endOffsets(TASKS_TOPIC);
      this.lastProbeOk = this.o.clock.now();
    } catch (err) {
      this.lastProbeError = errorMessage(err);
    } finally {
      this.probing = false;
    }
  }
}

function conflictMessage(id: string, op: TaskOp, reason: string): string {
  if (op === 'create') return `task ${id} already exists`;
  return `task ${id} changed meanwhile (${reason}): get it again and retry with its new ETag`;
}
