/**
 * What an API benchmark started besides the programs of test/kit/processes.ts (its broker, its bare server), and
 * the one clean-up that ends it all, whether the run ended, failed or was interrupted.
 */
import type { BareServer } from './api-bare.js';
import { endSchedulers, killSchedulers } from './bench-scheduler.js';
import { killAll } from '../../test/kit/processes.js';
import type { OwnBroker } from '../../test/kit/own-broker.js';

export interface Started {
  broker?: OwnBroker;
  bare?: BareServer;
}

let cleaning: Promise<void> | undefined;

/**
 * Kills every program and scheduler this process started (each by its pid) and the bare server, and stops and
 * deletes the broker (its log kept in `logDir`); a second call (signal and failing run) shares the first.
 */
export function cleanUp(started: Started, logDir: string): Promise<void> {
  cleaning ??= (async () => {
    await endSchedulers();
    await killAll();
    await started.bare?.stop();
    await started.broker?.dispose(logDir);
    // On a signal the run goes on meanwhile and may have started another program (a taskapi restart): that too.
    killSchedulers();
    await killAll();
  })();
  return cleaning;
}

/** Ctrl+C or SIGTERM: nothing of ours may stay behind; then exit 130. */
export function cleanUpOnSignal(started: Started, logDir: string): void {
  for (const sig of ['SIGINT', 'SIGTERM'] as const)
    process.once(sig, () => void cleanUp(started, logDir).finally(() => process.exit(130)));
}
