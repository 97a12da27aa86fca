import type { Clock } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import type { Follower, InRecord, KafkaClient } from '../shared/kafka/index.js';
import { LOGS_TOPIC, parseRunLogChunk, RunLogFold } from '../shared/codecs/run-log.js';
import type { Dropped, ShownLine } from '../shared/codecs/run-log.js';
import { ApiError } from './problem.js';

/** What taskapi keeps of run logs in all, by default: the runs written to last, up to this many bytes. */
export const RUN_LOGS_MEMORY_BYTES = 64 * 1024 * 1024;
/** A missing topic is looked for again at most this often (on a request). */
const RECHECK_MS = 30_000;

/** `GET …/runs/{taskId}/logs`. */
export interface RunLogAnswer {
  taskId: string;
  items: ShownLine[];
  /** Lines and bytes of the run that are not shown (past the bound of 1,000 lines / 64 KiB, cut long lines). */
  dropped: Dropped;
  /** The attempts whose log ended (their last chunk was read). */
  ended: number[];
  /** Why there is nothing, or less than there was: the topic is missing, still being read, or the run not kept. */
  note?: string;
}

/**
 * The run logs of `taskmanager.logs` as taskapi keeps them: followed from `--history` back, each run (taskId) folded
 * into its bounded tail (RunLogFold), the runs written to least recently dropped first once all of them weigh more
 * than `maxBytes`. A request reads one run from memory; nothing reads the topic per request.
 */
export class RunLogIndex {
  /** Least recently written first (a Map keeps insertion order; a write moves its run to the end). */
  private readonly runs = new Map<string, RunLogFold>();
  private bytes = 0;
  private follower: Follower | undefined;
  private state: 'not started' | 'missing' | 'reading' | 'following' | 'failed' = 'not started';
  private problem = '';
  private checkedAt = -Infinity;
  private starting: Promise<void> | undefined;

  constructor(
    private readonly o: {
      kafka: Pick<KafkaClient, 'existingTopics' | 'follow'>;
      logger: Logger;
      clock: Clock;
      /** How far back to read at start, ms (taskapi's `--history`). */
      historyMs: number;
      maxBytes?: number;
    },
  ) {}

  /** Starts following when the topic exists; without it, says so once (and looks again on a later request). */
  start(): Promise<void> {
    this.starting ??= this.begin().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async begin(): Promise<void> {
    this.checkedAt = this.o.clock.now();
    try {
      if (!(await this.o.kafka.existingTopics([LOGS_TOPIC])).has(LOGS_TOPIC)) {
        if (this.state !== 'missing')
          this.o.logger.warn(
            `${LOGS_TOPIC} does not exist: the logs routes answer empty lists (create it with scripts/create-topics.sh)`,
          );
        this.state = 'missing';
        return;
      }
      this.state = 'reading';
      this.follower = await this.o.kafka.follow(LOGS_TOPIC, (r) => this.onRecord(r), {
        fromTimestamp: this.o.clock.now() - this.o.historyMs,
        batchMs: 50,
      });
      void this.follower.caughtUp.then(() => {
        if (this.state === 'reading') this.state = 'following';
      });
    } catch (err) {
      this.state = 'failed';
      this.problem = errorMessage(err);
      this.o.logger.error(
        `cannot follow ${LOGS_TOPIC} (${this.problem}): the logs routes answer empty lists`,
      );
    }
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
    this.follower = undefined;
  }

  onRecord(r: InRecord): void {
    const chunk = parseRunLogChunk(r.value);
    if (!chunk) {
      if (r.value !== null)
        this.o.logger.warn(`${LOGS_TOPIC}/${r.partition}@${r.offset} is no run log chunk; ignored`);
      return;
    }
    let fold = this.runs.get(chunk.taskId);
    if (fold) {
      this.runs.delete(chunk.taskId);
      this.bytes -= fold.weight;
    } else fold = new RunLogFold();
    fold.add(chunk);
    this.runs.set(chunk.taskId, fold);
    this.bytes += fold.weight;
    const max = this.o.maxBytes ?? RUN_LOGS_MEMORY_BYTES;
    for (const [taskId, f] of this.runs) {
      if (this.bytes <= max || taskId === chunk.taskId) break;
      this.runs.delete(taskId);
      this.bytes -= f.weight;
    }
  }

  /** Runs kept, and their weight in bytes (about). */
  get size(): { runs: number; bytes: number } {
    return { runs: this.runs.size, bytes: this.bytes };
  }

  /** The log of run `taskId` of schedule `scheduleId`: 404 for a taskId of another schedule. */
  async answer(scheduleId: string, taskId: string): Promise<RunLogAnswer> {
    if (!taskId.startsWith(`${scheduleId}@`))
      throw new ApiError(
        404,
        `${taskId} is no run of ${scheduleId} (its taskIds are ${scheduleId}@<instant>)`,
      );
    if (
      (this.state === 'missing' || this.state === 'failed') &&
      this.o.clock.now() - this.checkedAt >= RECHECK_MS
    )
      await this.start();
    const view = this.runs.get(taskId)?.view();
    const note = this.note(view !== undefined);
    return {
      taskId,
      items: view?.lines ?? [],
      dropped: view?.dropped ?? { lines: 0, bytes: 0 },
      ended: view?.ended ?? [],
      ...(note ? { note } : {}),
    };
  }

  private note(found: boolean): string | undefined {
    switch (this.state) {
      case 'missing':
        return `${LOGS_TOPIC} does not exist: run logs are not kept (create it with scripts/create-topics.sh)`;
      case 'failed':
        return `taskapi cannot read ${LOGS_TOPIC}: ${this.problem}`;
      case 'not started':
      case 'reading':
        return found ? `still reading ${LOGS_TOPIC}: more lines may come` : `still reading ${LOGS_TOPIC}`;
      case 'following':
        return found
          ? undefined
          : 'no log lines of this run here: it logged nothing yet, or its lines are older than --history or were evicted from memory';
    }
  }
}
