// An example of user processors: `taskconsumer --processors ./examples/my-processors.js`.
// Every export that has a string `name` and a `process(task, ctx)` function (or an array of them) is added.
// Resolution is the same as for built-ins: exact name, else the last segment after "/" or ".".

/** Logs a report; retried with backoff when it throws, sent to the DLQ after --max-attempts. */
export const reportProcessor = {
  name: 'ReportProcessor',
  async process(task, ctx) {
    ctx.logger.info(`building report ${task.param ?? ''}`, { taskId: task.taskId, attempt: ctx.attempt });
  },
};

/** Fails on its first two attempts and succeeds on the third: shows retries in the events topic. */
export const flakyProcessor = {
  name: 'FlakyProcessor',
  async process(_task, ctx) {
    if (ctx.attempt < 3) throw new Error(`flaky failure on attempt ${ctx.attempt}`);
  },
};
