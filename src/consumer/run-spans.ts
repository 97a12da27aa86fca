import { AsyncLocalStorage } from 'node:async_hooks';
import { errorMessage } from '../shared/errors.js';
import type { InRecord } from '../shared/kafka/index.js';
import { TRACEPARENT_HEADER } from '../shared/tracing.js';
import type { TraceSpan, Tracing } from '../shared/tracing.js';

/** One record being run: its `consume` span and how it ended. */
interface Consuming {
  span: TraceSpan;
  status?: string;
  attempts?: number;
}

/**
 * The consumer's spans (docs/operations.md#traces): `consume`, from a task record taken to its run done, a child of
 * the context in the record's `traceparent` header; under it one `process` span per attempt. The record a span
 * belongs to is found through the async context of its run, so TaskRunner hands nothing down for them. Callers
 * check {@link enabled} first: with tracing off nothing here is called, and a task allocates nothing for it.
 */
export class RunSpans {
  private readonly current = new AsyncLocalStorage<Consuming>();

  constructor(private readonly tracing: Tracing) {}

  get enabled(): boolean {
    return this.tracing.enabled;
  }

  /** Runs `work` (one record's run, to done or interrupted) inside its `consume` span. */
  async consume<T extends string>(rec: InRecord, work: () => Promise<T>): Promise<T> {
    const span = this.tracing.startSpan('consume', {
      parent: rec.headers[TRACEPARENT_HEADER],
      kind: 'consumer',
      attributes: {
        'messaging.system': 'kafka',
        'messaging.operation.type': 'process',
        'messaging.destination.name': rec.topic,
        'messaging.destination.partition.id': String(rec.partition),
        'messaging.kafka.offset': Number(rec.offset),
        'taskmanager.task_id': rec.headers['task-id'],
        'taskmanager.schedule_id': rec.headers['schedule-id'],
      },
    });
    const state: Consuming = { span };
    try {
      const result = await this.current.run(state, work);
      span.end({
        attributes: {
          'taskmanager.outcome': state.status ?? result,
          'taskmanager.attempts': state.attempts,
        },
      });
      return result;
    } catch (err) {
      span.end({ error: errorMessage(err) });
      throw err;
    }
  }

  /** Where a run ended (FINISHED, DLQ, CANCELLED, …): the `consume` span's outcome. */
  outcome(status: string, attempts: number): void {
    const state = this.current.getStore();
    if (!state) return;
    state.status = status;
    state.attempts = attempts;
  }

  /** Starts the `process` span of one attempt, under the run's `consume` span. */
  process(
    attempt: number,
    task: { taskId: string; scheduleId: string; processor: string },
  ): TraceSpan | undefined {
    const state = this.current.getStore();
    if (!state) return undefined;
    state.span.setAttributes({ 'taskmanager.processor': task.processor });
    return this.tracing.startSpan('process', {
      parent: state.span,
      attributes: {
        'taskmanager.task_id': task.taskId,
        'taskmanager.schedule_id': task.scheduleId,
        'taskmanager.processor': task.processor,
        'taskmanager.attempt': attempt,
      },
    });
  }
}

/** Ends an attempt's `process` span with its outcome (`succeeded`, `failed`, `cancelled`). */
export function endProcess(span: TraceSpan | undefined, outcome: string, error?: unknown): void {
  span?.end({
    attributes: { 'taskmanager.outcome': outcome },
    ...(error === undefined ? {} : { error: errorMessage(error) }),
  });
}
