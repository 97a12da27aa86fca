/**
 * The failover scenarios, each one run: set up the real CLIs on a steady stream of every-second tasks, wait until
 * ownership is settled, cause the event at a fixed phase of the second, and measure until the work the victim
 * owned flows again; then account for every task of the run.
 */
import type { OwnBroker } from '../../test/kit/own-broker.js';
import { exitWithin } from '../../test/kit/processes.js';
import type { Exit } from '../../test/kit/processes.js';
import { poll, sleep } from '../../test/kit/wait.js';
import { balancedIds, Run, second, untilPhase } from './failover-pipeline.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import type { Accounting, Rig } from './failover-pipeline.js';

export type ScenarioId = 'a' | 'b' | 'c' | 'd';

export interface RunResult {
  scenario: ScenarioId;
  run: number;
  /** Event to recovery, ms; undefined when it did not recover within the deadline (or the run failed). */
  recoveryMs: number | undefined;
  accounting: Accounting | undefined;
  /** Measured side facts (which partitions moved, how long a drain took, …). */
  facts: Record<string, number | string>;
  notes: string[];
  /** False when something the guarantees rule out happened, or the run could not be completed. */
  ok: boolean;
}

/** Tasks per partition of the task topic in the consumer scenarios: 24 schedules, each firing every second. */
const PER_PARTITION = 2;
/** Scheduler scenario: entries firing every second, spread by the state partitioner over both instances. */
const SCHEDULER_ENTRIES = 40;
/** The event is caused this far into a second: the next fire comes ~150 ms later, so a task waits at once. */
const PHASE_MS = 850;
const SETTLE_TIMEOUT_MS = 90_000;
const RECOVERY_TIMEOUT_MS = 60_000;

function exitNote(who: string, e: Exit, expected = 0): string | undefined {
  if (e.forced) return `${who} did not exit in time (SIGKILLed)`;
  if (e.code !== expected) return `${who} exited ${e.code ?? e.signal}`;
  return undefined;
}

/** Judges the accounting: loss and publishing twice are never allowed; FINISHED twice only where `allowed`. */
function verdict(acc: Accounting, notes: string[]): boolean {
  const lost = acc.unpublished.length + acc.unprocessed.length;
  if (acc.unpublished.length > 0) notes.push(`never published: ${acc.unpublished.slice(0, 5).join(' ')}…`);
  if (acc.unprocessed.length > 0) notes.push(`never FINISHED: ${acc.unprocessed.slice(0, 5).join(' ')}…`);
  if (acc.publishedTwice > 0)
    notes.push(`${acc.publishedTwice} task messages published twice (exactly-once broken)`);
  const unexpected = acc.finishedTwice - acc.finishedTwiceAllowed;
  if (unexpected > 0) notes.push(`${unexpected} FINISHED twice beyond what the scenario allows`);
  return lost === 0 && acc.publishedTwice === 0 && unexpected === 0;
}

const NO_EXIT: Exit = { code: null, signal: null, atMs: 0, forced: true };

const since = (t: number | undefined, from: number): number | undefined =>
  t === undefined ? undefined : t - from;

/** The earliest of `events` matching `took`, by the consumer's own `at`. */
function earliestAt(
  events: Array<{ value: StatusEvent }>,
  took: (e: StatusEvent) => boolean,
): number | undefined {
  const ats = events.filter((r) => took(r.value)).map((r) => Date.parse(r.value.at));
  return ats.length > 0 ? Math.min(...ats) : undefined;
}

/**
 * a (SIGKILL) and b (SIGTERM): two consumers in one group; one is stopped, and recovery is the first task of a
 * partition it owned that the other one finished.
 */
export async function consumerFailover(rig: Rig, mode: 'SIGKILL' | 'SIGTERM', n: number): Promise<RunResult> {
  const scenario: ScenarioId = mode === 'SIGKILL' ? 'a' : 'b';
  const run = await Run.create(rig, `${scenario}${n}`, (p) => balancedIds(p, PER_PARTITION));
  const notes: string[] = [];
  const facts: Record<string, number | string> = {};
  try {
    const scheduler = run.scheduler();
    const victim = run.consumer();
    const survivor = run.consumer();
    const owners = await poll(() => run.settledOwners([victim.pid, survivor.pid]), SETTLE_TIMEOUT_MS, 100);
    if (!owners) throw new Error(`the two consumers did not settle within ${SETTLE_TIMEOUT_MS} ms`);
    const moved = new Set([...owners].filter(([, pid]) => pid === victim.pid).map(([p]) => p));
    facts['victimPartitions'] = [...moved].sort((x, y) => x - y).join(',');

    await untilPhase(PHASE_MS);
    const at = Date.now();
    victim.signal(mode);
    const took = (e: StatusEvent): boolean =>
      e.by.pid === survivor.pid && !!e.source && moved.has(e.source.partition) && Date.parse(e.at) > at;
    const seen = await poll(() => run.finished().find((r) => took(r.value)), RECOVERY_TIMEOUT_MS);
    // Run on until the stream is whole again (every entry of a later second finished) before judging.
    if (seen) await poll(() => run.allFinishedAt(second(seen.receivedAt) + 2000) || undefined, 30_000, 100);
    else
      notes.push(`no task of partitions [${facts['victimPartitions']}] finished on the survivor within 60 s`);
    const recoveredAt = earliestAt(run.finished(), took);

    const victimExit = await exitWithin(victim, 30_000);
    if (mode === 'SIGTERM') {
      facts['victimExitMs'] = victimExit.atMs - at;
      const n1 = exitNote('the leaving consumer', victimExit);
      if (n1) notes.push(n1);
    }
    const { schedulerExit, consumerExits } = await run.finish(scheduler, [survivor]);
    for (const note of [
      exitNote('the scheduler', schedulerExit),
      exitNote('the surviving consumer', consumerExits[0] ?? NO_EXIT),
    ]) {
      if (note) notes.push(note);
    }
    // After a SIGKILL the survivor runs again what the victim finished but had not committed (at-least-once).
    const redelivered = (evs: StatusEvent[]): boolean => {
      const [first, ...later] = [...evs].sort((x, y) => Date.parse(x.at) - Date.parse(y.at));
      return (
        first?.by.pid === victim.pid &&
        Date.parse(first.at) <= at &&
        later.every((e) => e.by.pid === survivor.pid && Date.parse(e.at) > at)
      );
    };
    const accounting = run.account({
      consumers: true,
      allowed: mode === 'SIGKILL' ? redelivered : undefined,
    });
    const ok = verdict(accounting, notes) && recoveredAt !== undefined;
    notes.push(...run.logProblems());
    return { scenario, run: n, recoveryMs: since(recoveredAt, at), accounting, facts, notes, ok };
  } finally {
    await run.dispose();
  }
}

/**
 * c: two schedulers in one group on the same file; the one owning some entries is SIGKILLed, and recovery is the
 * first task of one of its entries the other one published (visible to a read_committed reader).
 */
export async function schedulerFailover(rig: Rig, n: number): Promise<RunResult> {
  const ids = (p: string): string[] => Array.from({ length: SCHEDULER_ENTRIES }, (_, i) => `${p}-${i}`);
  const run = await Run.create(rig, `c${n}`, ids);
  const notes: string[] = [];
  const facts: Record<string, number | string> = {};
  try {
    // One after the other: an established instance, then a second one joining. Started together, the first one
    // can lose state partitions while still reading them, and that takeover then hangs until the next rebalance
    // (a separate problem, not what this scenario measures).
    const victim = run.scheduler();
    const alone = await poll(() => run.settledFirers([victim.pid]), SETTLE_TIMEOUT_MS, 100);
    if (!alone)
      throw new Error(`the first scheduler did not fire every entry within ${SETTLE_TIMEOUT_MS} ms`);
    const survivor = run.scheduler();
    const firers = await poll(() => run.settledFirers([victim.pid, survivor.pid]), SETTLE_TIMEOUT_MS, 100);
    if (!firers) throw new Error(`the two schedulers did not settle within ${SETTLE_TIMEOUT_MS} ms`);
    const moved = new Set([...firers].filter(([, pid]) => pid === victim.pid).map(([id]) => id));
    facts['victimEntries'] = moved.size;

    await untilPhase(PHASE_MS);
    const at = Date.now();
    victim.signal('SIGKILL');
    const took = (r: {
      value: { scheduler: { pid: number }; scheduleId: string };
      receivedAt: number;
    }): boolean =>
      r.value.scheduler.pid === survivor.pid && moved.has(r.value.scheduleId) && r.receivedAt > at;
    const seen = await poll(() => run.tasks().find(took), RECOVERY_TIMEOUT_MS);
    if (seen) await poll(() => run.allPublishedAt(second(seen.receivedAt) + 2000) || undefined, 30_000, 100);
    else notes.push(`no entry of the killed scheduler was published by the survivor within 60 s`);
    const taken = run.tasks().filter(took);
    const recoveredAt = taken.length > 0 ? Math.min(...taken.map((r) => r.receivedAt)) : undefined;
    if (taken.length > 0) {
      facts['firedAtMs'] = Math.min(...taken.map((r) => Date.parse(r.value.firedAt))) - at;
      facts['firedLate'] = taken.filter(
        (r) => Date.parse(r.value.firedAt) - Date.parse(r.value.scheduledFor) > 1000,
      ).length;
    }

    survivor.signal('SIGTERM');
    const note = exitNote('the surviving scheduler', await exitWithin(survivor, 20_000));
    if (note) notes.push(note);
    await run.caughtUp();
    const accounting = run.account({ consumers: false });
    const ok = verdict(accounting, notes) && recoveredAt !== undefined;
    notes.push(...run.logProblems());
    return { scenario: 'c', run: n, recoveryMs: since(recoveredAt, at), accounting, facts, notes, ok };
  } finally {
    await run.dispose();
  }
}

/**
 * d: a scheduler and a consumer on our own broker; the broker is stopped, kept down `downMs`, started again.
 * Recovery: from the broker ready again to the first task published after it was restarting (its `firedAt`,
 * the start of the transaction that published it, is later than the start command) that also FINISHED.
 */
export async function brokerRestart(
  rig: Rig,
  broker: OwnBroker,
  n: number,
  downMs: number,
): Promise<RunResult> {
  const run = await Run.create(rig, `d${n}`, (p) => balancedIds(p, PER_PARTITION));
  const notes: string[] = [];
  const facts: Record<string, number | string> = {};
  try {
    const scheduler = run.scheduler();
    const consumer = run.consumer();
    const owners = await poll(() => run.settledOwners([consumer.pid]), SETTLE_TIMEOUT_MS, 100);
    if (!owners) throw new Error(`scheduler and consumer did not settle within ${SETTLE_TIMEOUT_MS} ms`);

    const stopAt = Date.now();
    await broker.stop();
    const downAt = Date.now();
    facts['stopMs'] = downAt - stopAt;
    await sleep(downAt + downMs - Date.now());
    const startAt = Date.now();
    await broker.start();
    const backAt = Date.now();
    facts['startMs'] = backAt - startAt;

    const firedAfterStart = (): Set<string> =>
      new Set(
        run
          .tasks()
          .filter((r) => Date.parse(r.value.firedAt) >= startAt)
          .map((r) => r.value.taskId),
      );
    const endToEnd = (): number | undefined => {
      const fresh = firedAfterStart();
      return earliestAt(run.finished(), (e) => fresh.has(e.taskId));
    };
    const seen = await poll(endToEnd, RECOVERY_TIMEOUT_MS, 100);
    if (seen)
      await poll(
        () => run.allFinishedAt(second(Math.max(seen, Date.now())) + 2000) || undefined,
        30_000,
        100,
      );
    else notes.push('no task published after the restart finished within 60 s');
    const recoveredAt = endToEnd();
    const anyFinished = earliestAt(run.finished(), (e) => Date.parse(e.at) > startAt);
    if (anyFinished !== undefined) facts['firstFinishedMs'] = anyFinished - backAt;
    const fin = run.finishedByTask();
    const onTime = run
      .tasks()
      .map((r) => r.value)
      .filter((t) => Date.parse(t.scheduledFor) >= backAt)
      .filter((t) => {
        const e = fin.get(t.taskId)?.[0];
        return e !== undefined && Date.parse(e.at) - Date.parse(t.scheduledFor) < 1000;
      })
      .map((t) => Date.parse(t.scheduledFor));
    if (onTime.length > 0) facts['onTimeFromMs'] = Math.min(...onTime) - backAt;
    facts['firedLate'] = run
      .tasks()
      .filter((r) => Date.parse(r.value.firedAt) - Date.parse(r.value.scheduledFor) > 2000).length;

    const { schedulerExit, consumerExits } = await run.finish(scheduler, [consumer]);
    for (const note of [
      exitNote('the scheduler', schedulerExit),
      exitNote('the consumer', consumerExits[0] ?? NO_EXIT),
    ]) {
      if (note) notes.push(note);
    }
    // An outage may cost the commit of tasks that finished: they run again (at-least-once, de-duplicated by taskId).
    const accounting = run.account({ consumers: true, allowed: () => true });
    const ok = verdict(accounting, notes) && recoveredAt !== undefined;
    notes.push(...run.logProblems());
    return { scenario: 'd', run: n, recoveryMs: since(recoveredAt, backAt), accounting, facts, notes, ok };
  } finally {
    await run.dispose();
  }
}
