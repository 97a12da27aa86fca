import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { auditEventRecord, auditStamp } from '../shared/codecs/task-event.js';
import type { AuditAction, AuditEvent } from '../shared/codecs/task-event.js';
import { taskTopicProblem } from '../shared/config/topic-name.js';
import { isCommandProcessorName } from '../processors/command-policy.js';
import { actorOf, allows } from './auth/roles.js';
import type { Principal } from './auth/roles.js';
import type { KafkaStore } from './kafka-store.js';
import { sendAudit } from './audit-trail.js';
import type { TaskDefinition } from '../shared/tasks/definition.js';
import { decodeCursor, encodeCursor } from './page-cursor.js';
import { ApiError } from './problem.js';
import { optionProblems } from '../shared/schedule/model.js';
import { withTaskIds } from '../shared/backfill.js';
import type { BackfillRange, BackfillResult } from '../shared/backfill.js';
import { problemPath, problemText } from '../shared/schedule/messages.js';
import { isFinalRun } from './run-history.js';
import type { TaskRun } from './run-history.js';
import { cancelRecord, cancelRequest } from '../shared/codecs/cancel-request.js';
import { redactSecretFields } from './secret-fields.js';
import { applyPatch, definitionFromInput } from './task-input.js';
import type { Retired } from './retirement.js';
import type { InputDefaults, TaskInput, TaskPatch } from './task-input.js';
import { nextFires, toApiTask } from './task-model.js';
import { taskTopicRefusal } from './task-topics.js';
import type { ApiTask, NextFire, TaskState } from './task-model.js';
import type { TaskStore } from './task-store.js';
import type { ViewTask } from './task-view.js';
import type { CalendarService } from './calendar-service.js';
import type { RunLogAnswer, RunLogIndex } from './run-logs.js';
import { continuedTraceparent, inSpan, NO_TRACING } from '../shared/tracing.js';
import type { Tracing } from '../shared/tracing.js';

export interface ListRequest {
  limit: number;
  offset?: number;
  cursor?: string;
  status?: TaskState;
  processor?: string;
}

export interface TaskList {
  items: ApiTask[];
  total: number;
  nextCursor?: string;
}

/** What a cancel request answers: the run, where it stood when asked. */
export interface CancelResult {
  taskId: string;
  state: TaskRun['state'] | 'NOT SEEN';
  message: string;
}

export interface TriggerResult {
  taskId: string;
  message: string;
}

/** A backfill's answer: the taskIds of the range's instants by what became of them (docs/http-api.md#backfill). */
export type BackfillAnswer = { message: string } & BackfillResult;

/** How taskapi reaches the instance of a scheduler group that owns a task (ClusterStatus). */
export interface SchedulerLink {
  backfill(
    group: string,
    id: string,
    range: BackfillRange,
    by: string,
  ): Promise<{ message: string; backfill: BackfillResult }>;
}

export interface TaskServiceOptions {
  tasks: TaskStore;
  store: KafkaStore;
  logger: Logger;
  clock: Clock;
  defaults: InputDefaults;
  /** The topics tasks may go to (`--task-topics` and `--topic`, see allowedTaskTopics); others answer 400. */
  taskTopics: readonly string[];
  /** For backfills, which the owner of a task's state partition publishes; without it they answer 503. */
  scheduler?: SchedulerLink;
  /** The calendars tasks may name (none: a task naming one is refused). */
  calendars?: CalendarService;
  /** The run logs followed from taskmanager.logs (none: the logs routes answer empty lists saying so). */
  logs?: RunLogIndex;
  /** Spans of creates and triggers (docs/operations.md#traces). @default none */
  tracing?: Tracing;
}

/** Retries of a write without If-Match that lost a race: it applies on top of whatever won. */
const UNCONDITIONAL_ATTEMPTS = 3;

/** The (createdAt, id) a task list's cursor names. */
function cursorKey(text: string): { createdAt: string; id: string } {
  const [createdAt, id] = decodeCursor(text, 2) as [string, string];
  return { createdAt, id };
}

/** `"12"` or `W/"12"` or `12` → `12`; `*` stays `*`. */
function versionOfIfMatch(ifMatch: string | undefined): string | undefined {
  if (ifMatch === undefined) return undefined;
  const t = ifMatch.trim();
  if (t === '*') return '*';
  return t.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** What the routes do, independent of HTTP: tasks as the API shows them, writes with their preconditions. */
export class TaskService {
  private readonly tracing: Tracing;

  constructor(private readonly o: TaskServiceOptions) {
    this.tracing = o.tracing ?? NO_TRACING;
  }

  now(): number {
    return this.o.clock.now();
  }

  /** The task as `by` may see it: a viewer's payload has its secret-named fields redacted. */
  get(id: string, by: Principal): ApiTask {
    return this.show(this.found(id), by);
  }

  list(q: ListRequest, by: Principal): TaskList {
    const page = this.o.tasks.view.list({
      limit: q.limit,
      ...(q.offset === undefined ? {} : { offset: q.offset }),
      ...(q.cursor === undefined ? {} : { after: cursorKey(q.cursor) }),
      ...(q.status === undefined ? {} : { status: q.status }),
      ...(q.processor === undefined ? {} : { processor: q.processor }),
    });
    return {
      items: page.items.map((t) => this.show(t, by)),
      total: page.total,
      ...(page.last ? { nextCursor: encodeCursor([page.last.createdAt, page.last.id]) } : {}),
    };
  }

  /** The task's next `count` fires, in UTC and its zone. */
  next(id: string, count: number): NextFire[] {
    const t = this.found(id);
    return nextFires(
      t.def,
      this.o.tasks.view.latestRun(id),
      this.o.clock.now(),
      count,
      this.o.calendars?.excludedOf,
    );
  }

  runs(id: string): TaskRun[] {
    this.found(id);
    return this.o.tasks.view.runs.runs(id);
  }

  /** The log of one run of a schedule (an API task's or a schedule file entry's); 404 for another's taskId. */
  runLogOf(scheduleId: string, taskId: string): Promise<RunLogAnswer> {
    if (this.o.logs) return this.o.logs.answer(scheduleId, taskId);
    return Promise.resolve({
      taskId,
      items: [],
      dropped: { lines: 0, bytes: 0 },
      ended: [],
      note: 'this taskapi keeps no run logs',
    });
  }

  /** The log of one run of an API task. */
  runLogs(id: string, taskId: string): Promise<RunLogAnswer> {
    this.found(id);
    return this.runLogOf(id, taskId);
  }

  /** `traceparent`: the request's, which the `create` span continues (when taskapi traces). */
  create(input: TaskInput, by: Principal, traceparent?: string): Promise<ApiTask> {
    return inSpan(this.tracing, 'create', { parent: traceparent, kind: 'server' }, async (span) => {
      const task = await this.createTask(input, by);
      span?.setAttributes({ 'taskmanager.schedule_id': task.id, 'taskmanager.processor': task.processor });
      return task;
    });
  }

  private async createTask(input: TaskInput, by: Principal): Promise<ApiTask> {
    const actor = actorOf(by);
    const def = {
      ...definitionFromInput(input, this.o.defaults, this.o.clock.now()),
      createdBy: actor,
      updatedBy: actor,
    };
    checkCommandWriter(def, by);
    this.checkCalendars(def);
    await this.checkTopic(def);
    if (this.o.tasks.view.get(def.id)) throw new ApiError(409, `task ${def.id} already exists`);
    const { task } = await this.o.tasks.create(def, actor);
    const shown = this.written(def.id, task);
    await this.audit('task.created', shown, actor);
    return this.show(shown, by);
  }

  replace(id: string, input: TaskInput, ifMatch: string | undefined, by: Principal): Promise<ApiTask> {
    if (input.id !== undefined && input.id !== id)
      throw new ApiError(400, `the body's id ${input.id} is not the task's id ${id}`, [
        { pointer: '/id', detail: `must be ${id} (the id in the path) or left out` },
      ]);
    return this.change(id, ifMatch, by, (def) =>
      definitionFromInput(input, this.o.defaults, this.o.clock.now(), def),
    );
  }

  patch(id: string, patch: TaskPatch, ifMatch: string | undefined, by: Principal): Promise<ApiTask> {
    return this.change(id, ifMatch, by, (def) => applyPatch(def, patch, this.o.clock.now()));
  }

  async remove(id: string, ifMatch: string | undefined, by: Principal): Promise<void> {
    const actor = actorOf(by);
    const wanted = versionOfIfMatch(ifMatch);
    for (let attempt = 1; ; attempt++) {
      const current = this.found(id);
      this.checkPrecondition(current, wanted);
      try {
        await this.o.tasks.remove(id, current.version, actor);
        await this.audit('task.deleted', current, actor);
        return;
      } catch (err) {
        if (!this.retryable(err, wanted, attempt)) throw err;
      }
    }
  }

  /**
   * Fires the task once now; its consumers run it like any fire (`taskId` has millisecond precision). The run
   * continues the request's `traceparent`: under a `trigger` and a `publish` span when taskapi traces, else as is.
   */
  trigger(id: string, by: Principal, traceparent?: string): Promise<TriggerResult> {
    const attributes = { 'taskmanager.schedule_id': id };
    return inSpan(
      this.tracing,
      'trigger',
      { parent: traceparent, kind: 'server', attributes },
      async (span) => {
        const current = this.found(id);
        const { def } = current;
        // A task written before the allow-list was (or an instance with another list) is not fired from here.
        this.checkAllowedTopic(def.topic);
        this.o.store.assertWritable();
        const publishing = { parent: span, kind: 'producer', attributes } as const;
        const taskId = await inSpan(this.tracing, 'publish', publishing, async (publish) => {
          const tid = await this.o.tasks.fireNow(
            def,
            publish?.traceparent ?? continuedTraceparent(traceparent),
          );
          publish?.setAttributes({ 'taskmanager.task_id': tid, 'messaging.destination.name': def.topic });
          return tid;
        });
        span?.setAttributes({ 'taskmanager.task_id': taskId, 'taskmanager.processor': def.processor });
        await this.audit('task.triggered', current, actorOf(by), { taskId });
        return { taskId, message: `fired ${id} now as ${taskId} (topic ${def.topic})` };
      },
    );
  }

  /**
   * Asks the consumers to cancel one run of an API task (`taskId`, fired or still to come), audited as
   * `task.cancelled`; see {@link requestCancel}.
   */
  async cancelRun(
    id: string,
    taskId: string,
    reason: string | undefined,
    by: Principal,
  ): Promise<CancelResult> {
    const current = this.found(id);
    const answer = await this.requestCancel(id, taskId, reason, by);
    await this.audit('task.cancelled', current, actorOf(by), { taskId });
    return answer;
  }

  /**
   * Asks the consumers to cancel one run of a schedule (an API task's or a schedule file entry's): written to
   * taskmanager.cancels, which every consumer follows. 404 for a taskId of another schedule, 409 for a run that
   * ended already.
   */
  async requestCancel(
    scheduleId: string,
    taskId: string,
    reason: string | undefined,
    by: Principal,
  ): Promise<CancelResult> {
    if (!taskId.startsWith(`${scheduleId}@`))
      throw new ApiError(
        404,
        `${taskId} is no run of ${scheduleId} (its taskIds are ${scheduleId}@<instant>)`,
      );
    const run = this.o.tasks.view.runs.runs(scheduleId).find((r) => r.taskId === taskId);
    if (run && isFinalRun(run.state))
      throw new ApiError(
        409,
        `run ${taskId} ended ${run.state}${run.finishedAt ? ` at ${run.finishedAt}` : ''}: there is nothing to cancel`,
      );
    this.o.store.assertWritable();
    const req = cancelRequest(taskId, new Date(this.o.clock.now()), 'api', {
      user: actorOf(by),
      ...(reason === undefined ? {} : { reason }),
    });
    await this.o.store.send([cancelRecord(req)]);
    const state = run?.state ?? 'NOT SEEN';
    return {
      taskId,
      state,
      message: `cancel of ${taskId} (${state === 'NOT SEEN' ? 'not fired or not seen yet' : state}) requested: the consumer holding it ends it CANCELLED`,
    };
  }

  /**
   * Publishes each instant of the range that has no task yet, through the scheduler instance that owns the task
   * (with `dryRun`, lists them): audited unless a dry run.
   */
  async backfill(id: string, range: BackfillRange, by: Principal): Promise<BackfillAnswer> {
    const current = this.found(id);
    const { def } = current;
    this.checkAllowedTopic(def.topic);
    if (!this.o.scheduler) throw new ApiError(503, 'this taskapi has no link to the scheduler groups');
    const actor = actorOf(by);
    const { message, backfill: b } = await this.o.scheduler.backfill(def.group, id, range, actor);
    if (!b.dryRun)
      await this.audit('task.backfilled', current, actor, {
        backfill: { from: range.from, to: range.to, published: b.published.length },
      });
    return { message, ...withTaskIds(id, b) };
  }

  private async change(
    id: string,
    ifMatch: string | undefined,
    by: Principal,
    next: (def: TaskDefinition) => TaskDefinition,
  ): Promise<ApiTask> {
    const actor = actorOf(by);
    const wanted = versionOfIfMatch(ifMatch);
    for (let attempt = 1; ; attempt++) {
      const current = this.found(id);
      this.checkPrecondition(current, wanted);
      const def = { ...next(current.def), updatedBy: actor };
      checkWindow(def);
      checkCommandWriter(current.def, by);
      checkCommandWriter(def, by);
      this.checkCalendars(def, current.def.calendars);
      await this.checkTopic(def);
      try {
        const { task } = await this.o.tasks.update(def, current.version, actor);
        const shown = this.written(id, task);
        await this.audit('task.changed', shown, actor, changeOf(current.def, shown.def));
        return this.show(shown, by);
      } catch (err) {
        if (!this.retryable(err, wanted, attempt)) throw err;
      }
    }
  }

  /** A lost race is retried only for writes that did not name a version: theirs apply on top of the winner. */
  private retryable(err: unknown, wanted: string | undefined, attempt: number): boolean {
    return (
      err instanceof ApiError &&
      err.status === 409 &&
      (wanted === undefined || wanted === '*') &&
      attempt < UNCONDITIONAL_ATTEMPTS
    );
  }

  /**
   * Every change is also an event on taskmanager.events with the acting user (the task record carries it too). A
   * change already stored stays stored if this fails; it is logged.
   */
  private async audit(
    action: AuditAction,
    t: ViewTask,
    actor: string,
    extra: Pick<AuditEvent, 'taskId' | 'backfill' | 'changed' | 'enabled'> = {},
  ): Promise<void> {
    const event: AuditEvent = {
      v: 1,
      kind: 'audit',
      action,
      task: t.def.id,
      version: t.version,
      ...auditStamp(actor, this.o.clock.now()),
      group: t.def.group,
      ...extra,
    };
    await sendAudit(this.o, auditEventRecord(event), `${action} of task ${t.def.id}`);
  }

  private checkPrecondition(current: ViewTask, wanted: string | undefined): void {
    if (wanted !== undefined && wanted !== '*' && wanted !== current.version)
      throw new ApiError(
        409,
        `task ${current.def.id} is at version ${current.version}, not ${wanted} (If-Match): get it again and retry with its new ETag`,
      );
  }

  private async checkTopic(def: TaskDefinition): Promise<void> {
    const problem = taskTopicProblem(def.topic);
    if (problem)
      throw new ApiError(400, `invalid topic: ${problem}`, [{ pointer: '/topic', detail: problem }]);
    this.checkAllowedTopic(def.topic);
    if (!(await this.o.store.topicExists(def.topic)))
      throw new ApiError(400, `topic ${def.topic} does not exist`, [
        {
          pointer: '/topic',
          detail: `topic ${def.topic} does not exist (create it with scripts/create-topics.sh --topic ${def.topic})`,
        },
      ]);
  }

  /**
   * The calendars a task names must exist (taskapi's `/api/v1/calendars`): 400 naming each that does not. A change
   * is checked for the names it adds (`named`: those the task had), so that one that leaves them alone (a pause,
   * say) goes through even when one of them went missing meanwhile.
   */
  private checkCalendars(def: TaskDefinition, named: readonly string[] = []): void {
    if (!def.calendars?.some((n) => !named.includes(n))) return;
    if (!this.o.calendars)
      throw new ApiError(400, 'this taskapi has no calendars', [
        { pointer: '/calendars', detail: 'no calendar exists' },
      ]);
    this.o.calendars.check(def, named);
  }

  private checkAllowedTopic(topic: string): void {
    const refusal = taskTopicRefusal(topic, this.o.taskTopics);
    if (refusal) throw new ApiError(400, refusal, [{ pointer: '/topic', detail: refusal }]);
  }

  private found(id: string): ViewTask {
    const t = this.o.tasks.view.get(id);
    if (!t) throw new ApiError(404, notFound(id, this.o.tasks.retirement.retiredTask(id)));
    return t;
  }

  private written(id: string, task: ViewTask | null): ViewTask {
    if (!task) throw new ApiError(409, `task ${id} was deleted meanwhile`);
    return task;
  }

  private show(t: ViewTask, by: Principal): ApiTask {
    const task = toApiTask(
      t.def,
      t.version,
      this.o.tasks.view.latestRun(t.def.id),
      this.o.clock.now(),
      this.o.calendars?.excludedOf,
    );
    if (task.payload === undefined || allows(by.role, 'operator')) return task;
    return { ...task, payload: redactSecretFields(task.payload) };
  }
}

/** Fields of a definition that only record who changed it and when: no change of the task itself. */
const BOOKKEEPING = new Set(['createdAt', 'createdBy', 'updatedAt', 'updatedBy']);

/** What a change did, for its audit event: the fields set to another value, and a pause or resume. */
function changeOf(before: TaskDefinition, after: TaskDefinition): Pick<AuditEvent, 'changed' | 'enabled'> {
  const fields = new Set([...Object.keys(before), ...Object.keys(after)]);
  const changed = [...fields]
    .filter((f) => !BOOKKEEPING.has(f))
    .filter(
      (f) =>
        JSON.stringify(before[f as keyof TaskDefinition]) !==
        JSON.stringify(after[f as keyof TaskDefinition]),
    )
    .sort();
  const enabled = before.enabled !== after.enabled ? { enabled: after.enabled } : {};
  return { changed, ...enabled };
}

/** A 404's detail: a retired one-shot says when it was retired and after which run. */
function notFound(id: string, retired: Retired | undefined): string {
  if (!retired) return `no task ${id}`;
  const run = retired.run
    ? ` after its run ${retired.run.taskId} ended ${retired.run.state} at ${retired.run.endedAt}`
    : '';
  return `task ${id} was a one-shot task that was retired (removed) at ${retired.retiredAt}${run}`;
}

/**
 * A CommandProcessor task runs programs on the consumers' hosts (or containers) of whatever its payload says: only
 * an admin creates one, changes one, or turns another task into one. Operators may still trigger and delete them.
 */
function checkCommandWriter(def: TaskDefinition, by: Principal): void {
  if (isCommandProcessorName(def.processor) && !allows(by.role, 'admin'))
    throw new ApiError(
      403,
      `task ${def.id} runs CommandProcessor (processor ${JSON.stringify(def.processor)}), which runs programs on the consumers: only an admin may create or change it (${by.user} has role ${by.role})`,
    );
}

/**
 * A change must leave a window that can fire: a PATCH of `endAt` alone is checked against the stored `startAt` (the
 * body's own checks saw only the body), in the schedule model's words.
 */
function checkWindow(def: TaskDefinition): void {
  const window = optionProblems(def).find((p) => p.rule === 'window');
  if (window)
    throw new ApiError(400, `endAt ${problemText(window, 'http')}`, [
      { pointer: problemPath(window, 'http'), detail: problemText(window, 'http') },
    ]);
}
