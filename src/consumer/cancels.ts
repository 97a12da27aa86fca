import { describeCancel } from '../shared/codecs/cancel-request.js';
import type { CancelRequest } from '../shared/codecs/cancel-request.js';
import { AppError } from '../shared/errors.js';
import type { Abortable } from './attempt-signal.js';

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
  /** The attempts running per taskId: the one itself (nearly always), or a set when several run at once. */
  private readonly running = new Map<string, Abortable | Set<Abortable>>();
  private addsSinceSweep = 0;
  private markReady: () => void = () => undefined;
  private isReady = false;
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
    this.isReady = true;
    this.markReady();
  }

  /** Whether {@link ready} has settled (a task need not wait for it then). */
  get caughtUpAlready(): boolean {
    return this.isReady;
  }

  /** A request read: kept, and the attempts of its task running here are aborted with it. */
  add(req: CancelRequest): void {
    if (++this.addsSinceSweep >= 1000) this.sweep();
    this.requests.delete(req.taskId); // re-inserted: the map stays in the order requests were made
    this.requests.set(req.taskId, req);
    const r = this.running.get(req.taskId);
    if (r instanceof Set) for (const t of [...r]) t.abort(new CancelledError(req));
    else r?.abort(new CancelledError(req));
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
   * `target` (one attempt of `taskId`, or its wait for the next) is aborted when a request to cancel the task is
   * read (at once when one was read already), until {@link unwatch}.
   */
  watch(taskId: string, target: Abortable): void {
    const req = this.requests.get(taskId);
    if (req) target.abort(new CancelledError(req));
    const r = this.running.get(taskId);
    if (r === undefined) this.running.set(taskId, target);
    else if (r instanceof Set) r.add(target);
    else this.running.set(taskId, new Set([r, target]));
  }

  /** The attempt (or wait) settled. */
  unwatch(taskId: string, target: Abortable): void {
    const r = this.running.get(taskId);
    if (r === target) this.running.delete(taskId);
    else if (r instanceof Set) {
      r.delete(target);
      if (r.size === 0) this.running.delete(taskId);
    }
  }
}
