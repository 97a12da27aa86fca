import type { ScheduleEntry } from '../shared/config/schema.js';
import type { Logger } from '../shared/logger.js';
import type { ApiTaskSink, ApiTaskSource } from './api-tasks.js';
import type { GroupScheduler } from './group-scheduler.js';

/** The file's entries and the API's, one list: on an Id in both, the file's wins (and it is said once). */
export class EntrySources implements ApiTaskSink {
  file: readonly ScheduleEntry[] = [];
  private fileIds = new Set<string>();
  private warned = new Set<string>();
  scheduler: GroupScheduler | undefined;
  api: ApiTaskSource | undefined;

  constructor(private readonly logger: Logger) {}

  /** A new version of the schedule file: applied with the held API entries (a whole diff, as a reload is). */
  setFile(next: readonly ScheduleEntry[]): ScheduleEntry[] {
    this.file = next;
    this.fileIds = new Set(next.map((e) => e.id));
    return this.merged();
  }

  merged(): ScheduleEntry[] {
    const api = this.api?.list() ?? [];
    for (const e of api) if (this.fileIds.has(e.id)) this.warnShadowed(e.id);
    return [...this.file, ...api.filter((e) => !this.fileIds.has(e.id))];
  }

  /** One API task changed: applied alone (O(1)), unless a file entry has its Id. */
  put(entry: ScheduleEntry): void {
    if (this.fileIds.has(entry.id)) this.warnShadowed(entry.id);
    else this.scheduler?.putEntry(entry);
  }

  remove(id: string): void {
    if (!this.fileIds.has(id)) this.scheduler?.removeEntry(id);
  }

  private warnShadowed(id: string): void {
    if (this.warned.has(id)) return;
    this.warned.add(id);
    this.logger.error(
      `task ${id} from the HTTP API has the Id of a schedule file entry; the file's entry wins`,
    );
  }
}
