import { Command, CommanderError } from 'commander';
import type { Registry } from 'prom-client';
import { normalizeGoFlags } from './cli-common.js';
import { AppError, errorMessage } from './errors.js';
import { exitAfterFlush } from './lifecycle.js';
import type { Logger } from './logger.js';
import { processRegistry } from './ops/registry.js';
import { startOpsServer } from './ops/server.js';
import type { OpsServer, Readiness } from './ops/server.js';

/**
 * The command line of a program (taskscheduler, taskconsumer, taskapi): help after a usage error, and commander's
 * exits thrown instead of taken, so that {@link runProgram} picks every exit code.
 */
export function cliProgram(name: string, description: string): Command {
  return new Command().name(name).description(description).showHelpAfterError().exitOverride();
}

/**
 * The exit code for what a command threw: 0 for `--help` and `--version`, 2 for a usage error (commander's, or an
 * AppError with code USAGE), 1 for anything else.
 */
export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  return err instanceof AppError && err.code === 'USAGE' ? 2 : 1;
}

/**
 * Runs the command the arguments choose (the old Go tool's single-dash flags included). A command that fails ends
 * the process with {@link exitCodeOf}, after one line `<program>: <message>` on stderr (commander has written its
 * own message already). A command that succeeds ends when its work does (a server runs until its signal handler
 * exits).
 */
export async function runProgram(
  program: Command,
  argv: readonly string[] = process.argv.slice(2),
): Promise<void> {
  try {
    await program.parseAsync(normalizeGoFlags(argv), { from: 'user' });
  } catch (err) {
    if (!(err instanceof CommanderError)) process.stderr.write(`${program.name()}: ${errorMessage(err)}\n`);
    exitAfterFlush(exitCodeOf(err));
  }
}

/**
 * `--metrics-port` and `--metrics-host` of a long-running program: the registry its parts register their metrics in
 * (none without the flag), and the operator's port serving it with the program's readiness.
 */
export class MetricsEndpoint {
  readonly registry: Registry | undefined;
  private server: OpsServer | undefined;

  constructor(
    private readonly opts: { metricsPort?: number; metricsHost: string },
    program: string,
  ) {
    this.registry = opts.metricsPort === undefined ? undefined : processRegistry(program);
  }

  /** Serves /metrics, /healthz and /readyz; nothing without `--metrics-port`. */
  async start(readiness: () => Readiness, logger: Logger): Promise<void> {
    if (!this.registry || this.opts.metricsPort === undefined) return;
    this.server = await startOpsServer({
      port: this.opts.metricsPort,
      host: this.opts.metricsHost,
      registry: this.registry,
      readiness,
      logger,
    });
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
