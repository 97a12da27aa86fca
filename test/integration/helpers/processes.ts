import { startCli } from '../../kit/processes.js';
import type { CliName, StartOptions } from '../../kit/processes.js';

export { killAll, ROOT, startCli } from '../../kit/processes.js';
export type { Cli as RunningCli } from '../../kit/processes.js';

/** Runs a CLI to completion. */
export async function runCli(
  bin: CliName,
  args: string[],
  timeoutMs = 30_000,
  env: StartOptions['env'] = {},
): Promise<{ code: number | null; output: string; stdout: string }> {
  const cli = startCli(bin, args, { env });
  let stdout = '';
  cli.child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
  const timer = setTimeout(() => cli.signal('SIGKILL'), timeoutMs);
  const { code } = await cli.exited;
  clearTimeout(timer);
  return { code, output: cli.output, stdout };
}
