import { describeCancel } from '../shared/codecs/cancel-request.js';
import type { CancelRequest } from '../shared/codecs/cancel-request.js';
import { AppError } from '../shared/errors.js';

/** What a cancelled attempt's signal aborts with: the request, said in words. */
export class CancelledError extends AppError {
  constructor(readonly request: CancelRequest) {
    super('CANCELLED', describeCancel(request));
  }
}

/**
 * The cancel requests this consumer has read from `taskmanager.cancels`, and the attempts running now: a request
 * for a running task aborts its attempt's signal at once; one for a task not started yet stops it from starting.
 */
export class Cancels {
  private readonly requests = new Map<string, CancelRequest>();
  private readonly running = new Map<string, Set<AbortController>>();
  private addsSinceSweep = 0;
  private markReady: () => void = () => undefined;
  /**
   * Settles once the requests made before this consumer started are read (or it is known they cannot be): no task
   * starts before, so one cancelled while no consumer held it never starts.
   */
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));

  /**
   * @param keepMs how long a request is held: as long as the topic keeps it (its retention), after which a task it
   *   names has left the task topics too.
   */
  constructor(
    private readonly now: () => number,
    private readonly keepMs = 7 * 24 * 3_600_000,
  ) {}

  /** The requests made so far are read, or cannot be: tasks may start. */
  caughtUp(): void {
    this.markReady();
  }

  /** A request read: kept, and the attempts of its task running here are aborted with it. */
  add(req: CancelRequest): void {
    if (++this.addsSinceSweep >= 1000) this.sweep();
    this.requests.delete(req.taskId); // re-inserted: the map stays in the order requests were made
    this.requests.set(req.taskId, req);
    for (const c of this.running.get(req.taskId) ?? []) c.abort(new CancelledError(req));
  }

  /** The request to cancel `taskId`, if one was read. */
  requestOf(taskId: string): CancelRequest | undefined {
    return this.requests.get(taskId);
  }

  /** Requests held. */
  get size(): number {
    return this.requests.size;
  }

  /** Drops the requests older than keepMs (the map is in request order: oldest first). */
  private sweep(): void {
    this.addsSinceSweep = 0;
    const cutoff = this.now() - this.keepMs;
    for (const [taskId, req] of this.requests) {
      if (!(Date.parse(req.at) < cutoff)) break;
      this.requests.delete(taskId);
    }
  }

  /**
   * A signal for one attempt of `taskId` that aborts when a request to cancel it is read (at once when one was
   * read already); `done` when the attempt settled.
   */
  watch(taskId: string): { signal: AbortSignal; done(): void } {
    const c = new AbortController();
    const req = this.requests.get(taskId);
    if (req) c.abort(new CancelledError(req));
    let set = this.running.get(taskId);
    if (!set) this.running.set(taskId, (set = new Set()));
    set.add(c);
    return {
      signal: c.signal,
      done: () => {
        set.delete(c);
        if (set.size === 0 && this.running.get(taskId) === set) this.running.delete(taskId);
      },
    };
  }
}
