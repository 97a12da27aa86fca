/**
 * The real `taskapi` process for the API benchmark: started from dist/ on a free port against the benchmark's
 * broker, timed from spawn to its first `/api/readyz` 200, with the rebuild figure its log line states.
 */
import { join } from 'node:path';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import { useBearer, whenReady } from './api-http.js';
import { firstAdminApiToken } from './first-admin.js';
import { exitWithin, freePort, startCli } from '../../test/kit/processes.js';
import type { Cli } from '../../test/kit/processes.js';
import { poll } from '../../test/kit/wait.js';

const REBUILT = new RegExp(
  `view rebuilt from ${TASKS_TOPIC.replace('.', '\\.')}, [^:]+: (\\d+) task\\(s\\), \\d+ user\\(s\\)(?:, \\d+ calendar\\(s\\))? in (\\d+) ms`,
);
/** The benchmark's admin, created by the first taskapi it starts (TASKAPI_ADMIN_USER), its password changed at once. */
const ADMIN = {
  username: 'bench-admin',
  initialPassword: 'bench-admin-initial-password',
  password: 'bench-admin-password',
};

export interface Taskapi {
  cli: Cli;
  base: string;
  /** Spawn to the first 200 of /api/readyz, ms. */
  readyMs: number;
  /** From its log line "view rebuilt from … : N task(s) in X ms". */
  logged: { tasks: number; ms: number };
  stop(): Promise<void>;
}

/**
 * Starts `taskapi` (logging to `<logDir>/taskapi-<run>.log`) and resolves once it is ready. `dataDir`: its store
 * (default `<logDir>/data-<run>`); another run given the same one restarts from that store's checkpoint.
 */
export async function startTaskapi(
  brokers: string[],
  logDir: string,
  run: number,
  defaults: { topic: string; group: string },
  dataDir = join(logDir, `data-${run}`),
): Promise<Taskapi> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const args = ['--brokers', brokers.join(','), '--port', String(port), '--host', '127.0.0.1'];
  // A data dir per run: each start is a rebuild from the topic, not a restart from the previous run's store.
  args.push('--group', defaults.group, '--topic', defaults.topic, '--data-dir', dataDir);
  process.env.TASKAPI_ADMIN_USER = ADMIN.username;
  process.env.TASKAPI_ADMIN_PASSWORD = ADMIN.initialPassword;
  const t0 = performance.now();
  const cli = startCli('taskapi', args, { logFile: join(logDir, `taskapi-${run}.log`) });
  const stop = async (): Promise<void> => {
    cli.signal('SIGTERM');
    const exit = await exitWithin(cli, 15_000);
    if (exit.forced) console.error(`taskapi #${run} did not exit within 15 s of SIGTERM: killed`);
  };
  try {
    const readyAt = await whenReady(base, 300_000, () => cli.alive);
    // The line is written before the server listens; allow the file a moment all the same.
    const m = await poll(() => REBUILT.exec(cli.output) ?? undefined, 2000, 100);
    if (!m) throw new Error(`taskapi #${run} logged no "view rebuilt" line:\n${cli.output.slice(-2000)}`);
    const logged = { tasks: Number(m[1]), ms: Number(m[2]) };
    useBearer(await firstAdminApiToken(base, ADMIN, `bench-run-${run}`));
    return { cli, base, readyMs: readyAt - t0, logged, stop };
  } catch (err) {
    await stop();
    throw new Error(
      `${err instanceof Error ? err.message : String(err)}; its log:\n${cli.output.slice(-2000)}`,
    );
  }
}
