import { dlqTopicOf } from '../shared/codecs/dlq-record.js';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { taskTopicProblem } from '../shared/config/topic-name.js';
import { errorMessage } from '../shared/errors.js';
import type { Follower, KafkaClient } from '../shared/kafka/index.js';
import { DlqView } from './dlq-view.js';
import { ApiError } from './problem.js';

export interface DlqViewsOptions {
  kafka: KafkaClient;
  clock: Clock;
  /** DLQs followed at once; one more, while all were read within `idleMs`, answers 503. @default 32 */
  maxViews?: number;
  /** A DLQ nobody read for this long is no longer followed (its next reader starts again). @default 600000 */
  idleMs?: number;
  /** How long a first reader waits for the DLQ to be read up to its end (503 after; the reading goes on). @default 30000 */
  catchUpMs?: number;
}

interface Followed {
  /** Settles once the DLQ is read up to the end it had when following began. */
  ready: Promise<DlqView>;
  /** Once ready: the view, answered without waiting. */
  view?: DlqView;
  follower?: Follower;
  lastRead: number;
}

/** 400 for a name that is no task topic (an internal one, a DLQ, no topic name at all). */
function checkTaskTopic(topic: string): void {
  const problem = taskTopicProblem(topic);
  if (problem) throw new ApiError(400, problem, [{ pointer: '/topic', detail: problem }]);
}

/** The DLQ of the task topic named in a path: 400 for no task topic, 404 when its DLQ does not exist, 503 when Kafka does not answer. */
export async function existingDlq(kafka: KafkaClient, topic: string): Promise<string> {
  checkTaskTopic(topic);
  const dlq = dlqTopicOf(topic);
  let exists: boolean;
  try {
    exists = (await kafka.existingTopics([dlq])).size > 0;
  } catch (err) {
    throw new ApiError(503, `cannot read ${dlq}: ${errorMessage(err)}`);
  }
  if (!exists)
    throw new ApiError(
      404,
      `${dlq} does not exist (create it with scripts/create-topics.sh --topic ${topic})`,
    );
  return dlq;
}

/**
 * The DLQs of task topics, each followed by one reader for as long as someone reads it: the first request for a
 * topic starts its follower (one consumer group) and waits until it has read the DLQ; every later request, from
 * any number of viewers, is answered from memory. Nothing is read per request.
 */
export class DlqViews {
  private readonly followed = new Map<string, Followed>();
  private sweepTimer: TimerHandle | undefined;
  private stopped = false;

  constructor(private readonly o: DlqViewsOptions) {}

  /** The view of the DLQ of `topic`: 400 for a name that is no task topic, 404 when its DLQ does not exist. */
  async view(topic: string): Promise<DlqView> {
    checkTaskTopic(topic);
    if (this.stopped) throw new ApiError(503, 'taskapi is stopping');
    const now = this.o.clock.now();
    this.sweep(now);
    let f = this.followed.get(topic);
    if (!f) {
      if (this.followed.size >= (this.o.maxViews ?? 32))
        throw new ApiError(
          503,
          `taskapi already follows ${this.followed.size} DLQs read within the last ${Math.round(this.idleMs / 1000)} s: try again later`,
        );
      const entry: Followed = {
        lastRead: now,
        ready: this.follow(topic, {
          started: (follower) => (entry.follower = follower),
          wanted: () => !this.stopped && this.followed.get(topic) === entry,
        }),
      };
      // A failed start is not kept: the next reader tries again (a DLQ created since, Kafka back).
      entry.ready.then(
        (view) => (entry.view = view),
        () => {
          if (this.followed.get(topic) === entry) this.followed.delete(topic);
        },
      );
      this.followed.set(topic, (f = entry));
    }
    f.lastRead = now;
    return f.view ?? this.caughtUp(topic, f.ready);
  }

  /** The view of the DLQ of `topic` when it is followed now (no Kafka call); undefined otherwise. */
  async current(topic: string): Promise<DlqView | undefined> {
    return this.followed.get(topic)?.ready.catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) this.o.clock.clearTimeout(this.sweepTimer);
    const all = [...this.followed.values()];
    this.followed.clear();
    await Promise.all(all.map((f) => f.follower?.stop()));
  }

  private get idleMs(): number {
    return this.o.idleMs ?? 600_000;
  }

  private async follow(
    topic: string,
    f: { started(follower: Follower): void; wanted(): boolean },
  ): Promise<DlqView> {
    const dlq = await existingDlq(this.o.kafka, topic);
    let follower: Follower | undefined;
    try {
      const view = new DlqView();
      follower = await this.o.kafka.follow(dlq, (r) => view.add(r), { fromBeginning: true });
      f.started(follower);
      // Swept or stopped while it started: nobody will stop it later.
      if (!f.wanted()) throw new ApiError(503, `taskapi stopped following ${dlq}; try again`);
      await follower.caughtUp;
      this.scheduleSweep();
      return view;
    } catch (err) {
      await follower?.stop();
      throw err instanceof ApiError ? err : new ApiError(503, `cannot read ${dlq}: ${errorMessage(err)}`);
    }
  }

  /** `ready`, or 503 when the first read takes longer than catchUpMs (the follower goes on; a later call may find it done). */
  private caughtUp(topic: string, ready: Promise<DlqView>): Promise<DlqView> {
    const ms = this.o.catchUpMs ?? 30_000;
    let timer: TimerHandle | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = this.o.clock.setTimeout(
        () =>
          reject(
            new ApiError(503, `${dlqTopicOf(topic)} was not read to its end within ${ms} ms; try again`),
          ),
        ms,
      );
    });
    return Promise.race([ready, late]).finally(() => {
      if (timer) this.o.clock.clearTimeout(timer);
    });
  }

  /** Stops following the DLQs nobody read within idleMs. */
  private sweep(now: number): void {
    for (const [topic, f] of this.followed)
      if (now - f.lastRead >= this.idleMs) {
        this.followed.delete(topic);
        void f.follower?.stop();
      }
  }

  private scheduleSweep(): void {
    if (this.sweepTimer || this.stopped) return;
    this.sweepTimer = this.o.clock.setTimeout(() => {
      this.sweepTimer = undefined;
      this.sweep(this.o.clock.now());
      if (this.followed.size > 0) this.scheduleSweep();
    }, this.idleMs);
  }
}
