import type { Processor } from './types.js';

/** Sample from the old tool: logs the birthday greetings it would send. */
export const birthdayProcessor: Processor = {
  name: 'BirthdayProcessor',
  async process(task, ctx) {
    ctx.logger.info(`sending birthday greetings for ${task.param ?? '(no param)'}`, {
      taskId: task.taskId,
      payload: task.payload,
      attempt: ctx.attempt,
    });
  },
};
