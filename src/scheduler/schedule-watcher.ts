import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { loadScheduleFile } from '../shared/config/load.js';
import type { ScheduleEntry } from '../shared/config/schema.js';
import { ConfigError, errorMessage, formatProblem } from '../shared/errors.js';
import type { Clock, TimerHandle } from '../shared/clock.js';
import { systemClock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';

export interface ScheduleWatcherOptions {
  file: string;
  logger: Logger;
  /** Called with every valid version of the file. */
  onValid(entries: readonly ScheduleEntry[]): void;
  /** @default 300 */
  debounceMs?: number;
  /** @default systemClock */
  clock?: Clock;
}

/**
 * Watches a schedule file. Editors and deploy tools often write a temporary file and rename it over the old one,
 * which replaces the inode a file watch would follow; so the directory is watched, filtered on the file's name,
 * and changes are debounced. An invalid version is reported with every error; the last good schedule stays.
 */
export class ScheduleWatcher {
  private watcher: FSWatcher | undefined;
  private timer: TimerHandle | undefined;
  private readonly clock: Clock;

  constructor(private readonly o: ScheduleWatcherOptions) {
    this.clock = o.clock ?? systemClock;
  }

  start(): void {
    const name = basename(this.o.file);
    this.watcher = watch(dirname(this.o.file), (_event, changed) => {
      if (changed !== null && changed !== name) return;
      if (this.timer) this.clock.clearTimeout(this.timer);
      this.timer = this.clock.setTimeout(() => void this.reload(), this.o.debounceMs ?? 300);
    });
    this.watcher.on('error', (err) =>
      this.o.logger.error(`cannot watch ${this.o.file}: ${errorMessage(err)}`),
    );
  }

  stop(): void {
    if (this.timer) this.clock.clearTimeout(this.timer);
    this.watcher?.close();
  }

  private async reload(): Promise<void> {
    try {
      this.o.onValid(await loadScheduleFile(this.o.file));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      for (const p of err.problems) this.o.logger.error(formatProblem(p));
      this.o.logger.error(
        `${this.o.file}: edit rejected (${err.problems.length} problem(s)); the last good schedule keeps firing`,
      );
    }
  }
}
