import type { Processor } from '../../src/processors/types.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

export const TIMING_PROCESSOR = 'BenchTimingProcessor';

/**
 * A processor that does nothing but note when it started (`Date.now()`, the clock the scheduler's instants are
 * read against), for latency benchmarks.
 */
export function timingProcessor(onStart: (task: TaskMessage, startedMs: number) => void): Processor {
  return {
    name: TIMING_PROCESSOR,
    async process(task) {
      onStart(task, Date.now());
    },
  };
}
