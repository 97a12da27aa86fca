import type { Processor } from './types.js';

/** Sample from the old tool: logs what it would invoice. */
export const invoiceProcessor: Processor = {
  name: 'InvoiceProcessor',
  async process(task, ctx) {
    ctx.logger.info(`invoicing for ${task.param ?? '(no param)'}`, {
      taskId: task.taskId,
      payload: task.payload,
      attempt: ctx.attempt,
    });
  },
};
