import type { Processor } from './types.js';

/** Does nothing; for benchmarks of the pipeline itself. */
export const noopProcessor: Processor = {
  name: 'NoopProcessor',
  async process() {},
};
