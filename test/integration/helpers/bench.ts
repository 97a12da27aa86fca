import { startBench } from '../../kit/processes.js';
import type { Cli } from '../../kit/processes.js';
import { brokers } from './kafka.js';

/** A running `dist/bench/<name>.js --smoke`: its process, and its exit code and output once it ends. */
export interface SmokeRun {
  cli: Cli;
  done: Promise<{ code: number | null; out: string }>;
}

/** Starts `dist/bench/<name>.js --smoke` with the test broker in its environment (and `extraEnv`). */
export function startSmoke(name: string, extraEnv: Record<string, string> = {}): SmokeRun {
  const cli = startBench(name, ['--smoke'], { env: { KAFKA_BROKERS: brokers(), ...extraEnv } });
  return { cli, done: cli.exited.then(({ code }) => ({ code, out: cli.output })) };
}

/** Runs `dist/bench/<name>.js --smoke` against the test broker and `topic`; resolves to its exit code and output. */
export async function smoke(name: string, topic: string): Promise<{ code: number | null; out: string }> {
  return startSmoke(name, { BENCH_TOPIC: topic }).done;
}

/**
 * Ends a smoke run still going (afterEach) with SIGTERM, on which a benchmark kills the programs it started and
 * deletes what it made, and waits for it to exit.
 */
export async function stopSmoke(run: SmokeRun | undefined): Promise<void> {
  if (!run?.cli.alive) return;
  run.cli.signal('SIGTERM');
  await run.done;
}
