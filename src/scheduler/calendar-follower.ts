import type { Follower, KafkaClient } from '../shared/kafka/index.js';
import type { Logger } from '../shared/logger.js';
import { CalendarBook, CALENDARS_TOPIC } from '../shared/tasks/calendars.js';

/**
 * The calendars of `taskmanager.calendars` that a scheduler's API tasks name, followed from the topic's start. Read
 * to its end before the tasks are (so no task is armed without its calendars); each later change reaches
 * `onChange`, which arms again the tasks naming that calendar. Without the topic (a cluster set up before calendars
 * existed), tasks have no calendars: said once.
 */
export class CalendarFollower {
  readonly book: CalendarBook;
  private follower: Follower | undefined;

  constructor(
    private readonly kafka: KafkaClient,
    private readonly logger: Logger,
    onChange: (name: string) => void,
  ) {
    this.book = new CalendarBook(logger);
    this.book.onChange = onChange;
  }

  async start(): Promise<void> {
    if (this.follower) return;
    if (!(await this.kafka.existingTopics([CALENDARS_TOPIC])).has(CALENDARS_TOPIC)) {
      this.logger.warn(
        `topic ${CALENDARS_TOPIC} does not exist: calendars named by tasks created over HTTP exclude nothing (create it with scripts/create-topics.sh)`,
      );
      return;
    }
    const follower = await this.kafka.follow(CALENDARS_TOPIC, (r) => void this.book.fold(r), {
      fromBeginning: true,
    });
    try {
      await follower.caughtUp;
    } catch (err) {
      await follower.stop();
      throw err;
    }
    this.follower = follower;
    this.logger.info(`${this.book.size} calendar(s) read from ${CALENDARS_TOPIC}`);
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
  }
}
