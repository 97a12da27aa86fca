import { FireLoop } from '../../../src/scheduler/fire-loop.js';
import type { Fire } from '../../../src/scheduler/fire-loop.js';
import { silentLogger } from '../../../src/shared/logger.js';
import type { FakeClock } from './fake-clock.js';

/** A fire loop on `clock` that records each fire with the time it was handed out. */
export function recordingLoop(clock: FakeClock): { loop: FireLoop; fires: Array<Fire & { at: number }> } {
  const fires: Array<Fire & { at: number }> = [];
  const loop = new FireLoop({
    clock,
    logger: silentLogger,
    onFires: (fs) => fs.forEach((f) => fires.push({ ...f, at: clock.now() })),
  });
  return { loop, fires };
}
