import type { Logger } from './logger.js';

export interface ShutdownOptions {
  logger: Logger;
  /** Graceful stop on the first SIGINT/SIGTERM; resolves to the exit code. */
  graceful(signal: NodeJS.Signals): Promise<number>;
  /** Runs on a second signal before exiting at once (e.g. commit what has finished). @default none */
  forced?(signal: NodeJS.Signals): Promise<void>;
}

/**
 * The one place a program handles signals: the first SIGINT/SIGTERM starts a graceful stop and exits with its
 * code; a second one exits at once with 128+signal (130 / 143) after the `forced` hook, bounded to 2 s.
 */
export function installShutdown(options: ShutdownOptions): void {
  let first: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (first === undefined) {
      first = signal;
      options.logger.info(`${signal} received: stopping gracefully (send it again to stop at once)`);
      options
        .graceful(signal)
        .then((code) => exitAfterFlush(code))
        .catch((err: unknown) => {
          options.logger.error(`graceful stop failed: ${err instanceof Error ? err.message : String(err)}`);
          exitAfterFlush(1);
        });
      return;
    }
    const code = signal === 'SIGINT' ? 130 : 143;
    options.logger.warn(`${signal} received again: stopping at once`);
    const forced = options.forced?.(signal) ?? Promise.resolve();
    const timer = setTimeout(() => process.exit(code), 2000);
    timer.unref();
    void forced.finally(() => exitAfterFlush(code));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** Exits once stdout/stderr have drained, so the last log lines are not lost. */
export function exitAfterFlush(code: number): void {
  process.exitCode = code;
  let pending = 2;
  const done = (): void => {
    if (--pending === 0) process.exit(code);
  };
  process.stdout.write('', done);
  process.stderr.write('', done);
}
