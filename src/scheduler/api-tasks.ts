import type { Clock, TimerHandle } from '../shared/clock.js';
import { systemClock } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import type { Logger } from '../shared/logger.js';
import type { Follower, InRecord, KafkaClient } from '../shared/kafka/index.js';
import { entryOfTask, readTaskRecord, specOfTask, TASKS_TOPIC } from '../shared/tasks/definition.js';
import { foldTaskRecord, nextKeyState } from '../shared/tasks/task-log.js';
import type { KeyState } from '../shared/tasks/task-log.js';

/**
 * The tasks created over HTTP that a scheduler group fires: `taskmanager.tasks` read from its start and followed,
 * keeping the definitions that name this group. Changes reach `onChange` as the group's whole list of API
 * entries (debounced), to go through the same path as a schedule file's hot reload.
 */
export class ApiTaskSource {
  private readonly entries = new Map<string, ScheduleEntry>();
  /** Every key's state under the topic's write rules (shared/tasks/task-log.ts), whatever group it names. */
  private readonly keys = new Map<string, KeyState>();
  private follower: Follower | undefined;
  private live = false;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly kafka: KafkaClient,
    private readonly group: string,
    private readonly logger: Logger,
    private readonly onChange: (entries: ScheduleEntry[]) => void,
    private readonly clock: Clock = systemClock,
  ) {}

  /** Reads the topic to its end and resolves to the group's API entries as they are now; then follows it. */
  async start(): Promise<ScheduleEntry[]> {
    if (!(await this.kafka.existingTopics([TASKS_TOPIC])).has(TASKS_TOPIC)) {
      this.logger.warn(
        `topic ${TASKS_TOPIC} does not exist: tasks created over HTTP are not fired (create it with scripts/create-topics.sh)`,
      );
      return [];
    }
    this.follower = await this.kafka.follow(TASKS_TOPIC, (r) => this.fold(r), { fromBeginning: true });
    await this.follower.caughtUp;
    this.live = true;
    const now = this.list();
    this.logger.info(`${now.length} task(s) from ${TASKS_TOPIC} for group ${this.group}`);
    return now;
  }

  list(): ScheduleEntry[] {
    return [...this.entries.values()];
  }

  async stop(): Promise<void> {
    if (this.timer) this.clock.clearTimeout(this.timer);
    await this.follower?.stop();
  }

  private fold(r: InRecord): void {
    const read = readTaskRecord(r, this.logger);
    if (!read) return;
    const { id, def } = read;
    const prev = this.keys.get(id);
    const outcome = foldTaskRecord(prev, r);
    if (outcome.kind === 'rejected' || outcome.kind === 'same') return;
    this.keys.set(id, nextKeyState(prev, outcome)!);
    let changed: boolean;
    if (def === undefined || def.group !== this.group) changed = this.entries.delete(id);
    else {
      const spec = specOfTask(def);
      if (typeof spec === 'string') return;
      this.entries.set(id, entryOfTask(def, spec));
      changed = true;
    }
    if (changed && this.live) this.emitSoon();
  }

  /** Many records arrive together (a batch, a burst of API writes): apply them once. */
  private emitSoon(): void {
    if (this.timer) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      try {
        this.onChange(this.list());
      } catch (err) {
        this.logger.error(`applying tasks from ${TASKS_TOPIC} failed: ${errorMessage(err)}`);
      }
    }, 50);
  }
}
