/**
 * Failover: how long the pipeline takes to recover from losing one of its parts, with the real CLIs against a real
 * broker, and whether any task was lost or ran twice beyond the delivery guarantees.
 *
 *   a. consumer kill -9: two consumers in a group on 24 every-second schedules; recovery = first task of a
 *      partition the killed one owned, FINISHED by the survivor.                                  target ≤ 10 s
 *   b. consumer SIGTERM: the same with a graceful leave, measured from the signal.                target ≤ 3 s
 *   c. scheduler kill -9: two taskschedulers in one group on 40 entries; recovery = first task of an entry the
 *      killed one fired, published by the survivor (seen by a read_committed reader).          target ≤ 10 s
 *   d. broker restart: a scheduler and a consumer on a broker of our own (scripts/kafka-local on free ports),
 *      stopped, down 5 s, started; recovery = from ready again to the first task published after the restart
 *      that FINISHED.                                                                            target ≤ 5 s
 *
 * Each scenario runs R times (fresh topic and groups each time); the table shows min / median / max. Losses count
 * (entry, second) pairs never published and tasks never FINISHED; doubles count extra FINISHED events per taskId,
 * "allowed" where at-least-once permits them (a killed consumer's uncommitted work; an outage).
 *
 *   npm run bench:failover -- [--runs 3] [--only a,b,c,d] [--down-s 5] [--log-level info] [--smoke]
 *   (env: KAFKA_BROKERS; the CLI logs go to a temporary folder, printed at the end)
 */
import { mkdtempSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { EVENTS_TOPIC } from '../src/shared/codecs/task-event.js';
import { SCHEDULER_STATE_TOPIC } from '../src/shared/codecs/scheduler-state.js';
import type { Rig } from './lib/failover-pipeline.js';
import { brokerRestart, consumerFailover, schedulerFailover } from './lib/failover-scenarios.js';
import type { RunResult, ScenarioId } from './lib/failover-scenarios.js';
import { rawKafka } from './lib/kafka-bench.js';
import {
  benchBrokers,
  cell,
  describeMachine,
  machineFacts,
  printTable,
  summarize,
  writeResults,
} from './lib/report.js';
import { whenReadable } from '../test/kit/kafka.js';
import { killAll } from '../test/kit/processes.js';
import { OwnBroker } from '../test/kit/own-broker.js';

const SCENARIOS: Record<ScenarioId, { label: string; targetMs: number }> = {
  a: { label: 'a. consumer kill -9', targetMs: 10_000 },
  b: { label: 'b. consumer SIGTERM', targetMs: 3_000 },
  c: { label: 'c. scheduler kill -9', targetMs: 10_000 },
  d: { label: 'd. broker restart', targetMs: 5_000 },
};
const ALL: ScenarioId[] = ['a', 'b', 'c', 'd'];
/** The smoke set: one CLI of each kind, no broker of our own (its JVM start alone takes longer than the rest). */
const SMOKE: ScenarioId[] = ['b', 'c'];

interface Params {
  runs: number;
  only: ScenarioId[];
  downMs: number;
  logLevel: string;
  smoke: boolean;
  brokers: string[];
}

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string' },
      only: { type: 'string' },
      'down-s': { type: 'string', default: '5' },
      'log-level': { type: 'string', default: 'info' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const smoke = values.smoke === true;
  const runs = Number(values.runs ?? (smoke ? 1 : 3));
  const downMs = Number(values['down-s']) * 1000;
  if (!Number.isInteger(runs) || runs < 1)
    throw new Error(`--runs must be a positive integer (got ${values.runs})`);
  if (!(downMs >= 0)) throw new Error(`--down-s must be a number of seconds (got ${values['down-s']})`);
  const only =
    values.only === undefined ? (smoke ? SMOKE : ALL) : values.only.split(',').map((s) => s.trim());
  const unknown = only.filter((s) => !ALL.includes(s as ScenarioId));
  if (unknown.length > 0)
    throw new Error(`--only takes a comma-separated subset of a,b,c,d (got ${unknown.join(',')})`);
  return {
    runs,
    only: ALL.filter((s) => only.includes(s)),
    downMs,
    logLevel: values['log-level'] ?? 'info',
    smoke,
    brokers: benchBrokers(),
  };
}

/** The topics the programs share must exist (scripts/create-topics.sh); the benchmark does not touch them. */
async function checkSharedTopics(rig: Rig): Promise<void> {
  const admin = rig.kafka.admin();
  await admin.connect();
  try {
    const topics = new Set(await admin.listTopics());
    const missing = [EVENTS_TOPIC, SCHEDULER_STATE_TOPIC].filter((t) => !topics.has(t));
    if (missing.length > 0) {
      throw new Error(
        `topics ${missing.join(', ')} missing on ${rig.brokers.join(',')}: run scripts/create-topics.sh first`,
      );
    }
  } finally {
    await admin.disconnect();
  }
}

/** Runs one scenario `runs` times; a run that throws is recorded as failed and the next one goes on. */
async function repeat(
  id: ScenarioId,
  runs: number,
  once: (n: number) => Promise<RunResult>,
): Promise<RunResult[]> {
  const out: RunResult[] = [];
  for (let n = 1; n <= runs; n++) {
    let r: RunResult;
    try {
      r = await once(n);
    } catch (err) {
      await killAll();
      const note = err instanceof Error ? err.message : String(err);
      r = {
        scenario: id,
        run: n,
        recoveryMs: undefined,
        accounting: undefined,
        facts: {},
        notes: [note],
        ok: false,
      };
    }
    const rec = r.recoveryMs === undefined ? 'not recovered' : `${(r.recoveryMs / 1000).toFixed(2)} s`;
    console.error(`${SCENARIOS[id].label} #${n}: ${rec}${r.ok ? '' : ' (FAILED)'}`);
    out.push(r);
  }
  return out;
}

async function runAll(p: Params, logDir: string, onBroker: (b: OwnBroker) => void): Promise<RunResult[]> {
  const rig: Rig = {
    kafka: rawKafka(p.brokers, 'bench-failover'),
    brokers: p.brokers,
    logDir,
    logLevel: p.logLevel,
  };
  const results: RunResult[] = [];
  if (p.only.some((s) => s !== 'd')) await checkSharedTopics(rig);
  for (const id of p.only) {
    if (id === 'a') results.push(...(await repeat(id, p.runs, (n) => consumerFailover(rig, 'SIGKILL', n))));
    if (id === 'b') results.push(...(await repeat(id, p.runs, (n) => consumerFailover(rig, 'SIGTERM', n))));
    if (id === 'c') results.push(...(await repeat(id, p.runs, (n) => schedulerFailover(rig, n))));
    if (id === 'd') {
      const broker = await OwnBroker.create(logDir);
      onBroker(broker);
      try {
        await broker.start();
        await broker.createSharedTopics();
        const own: Rig = {
          ...rig,
          kafka: rawKafka(broker.brokers, 'bench-failover'),
          brokers: broker.brokers,
        };
        await whenReadable(own.kafka, [EVENTS_TOPIC, SCHEDULER_STATE_TOPIC]);
        results.push(...(await repeat(id, p.runs, (n) => brokerRestart(own, broker, n, p.downMs))));
      } finally {
        await broker.dispose(logDir);
      }
    }
  }
  return results;
}

interface Row {
  scenario: ScenarioId;
  runs: number;
  recovered: number;
  minMs: number;
  medianMs: number;
  maxMs: number;
  targetMs: number;
  met: boolean;
  tasks: number;
  lost: number;
  doubled: number;
  doubledAllowed: number;
}

function rowOf(id: ScenarioId, rs: RunResult[]): Row {
  const ms = rs.flatMap((r) => (r.recoveryMs === undefined ? [] : [r.recoveryMs]));
  const { targetMs } = SCENARIOS[id];
  const sum = (f: (r: RunResult) => number): number => rs.reduce((n, r) => n + f(r), 0);
  return {
    scenario: id,
    runs: rs.length,
    recovered: ms.length,
    minMs: ms.length > 0 ? Math.min(...ms) : NaN,
    medianMs: summarize(ms).p50,
    maxMs: summarize(ms).max,
    targetMs,
    met: ms.length === rs.length && ms.every((x) => x <= targetMs),
    tasks: sum((r) => r.accounting?.expected ?? 0),
    lost: sum((r) => (r.accounting ? r.accounting.unpublished.length + r.accounting.unprocessed.length : 0)),
    doubled: sum((r) => (r.accounting ? r.accounting.finishedTwice + r.accounting.publishedTwice : 0)),
    doubledAllowed: sum((r) => r.accounting?.finishedTwiceAllowed ?? 0),
  };
}

function printRows(rows: Row[], results: RunResult[]): void {
  const s = (ms: number): string => cell(ms / 1000, 2);
  printTable(
    ['scenario', 'runs', 'min s', 'median s', 'max s', 'target s', 'met', 'tasks', 'lost', 'twice (allowed)'],
    rows.map((r) => [
      SCENARIOS[r.scenario].label,
      r.recovered === r.runs ? String(r.runs) : `${r.recovered}/${r.runs}`,
      s(r.minMs),
      s(r.medianMs),
      s(r.maxMs),
      `≤ ${r.targetMs / 1000}`,
      r.met ? 'yes' : `no (${r.runs - r.recovered + rowsOver(r, results)}/${r.runs})`,
      String(r.tasks),
      String(r.lost),
      `${r.doubled} (${r.doubledAllowed})`,
    ]),
  );
  for (const r of results) {
    const facts = Object.entries(r.facts).map(([k, v]) => `${k}=${v}`);
    const rec = r.recoveryMs === undefined ? 'not recovered' : `recovery ${r.recoveryMs} ms`;
    console.log(`${r.scenario}#${r.run}: ${[rec, ...facts].join(', ')}${r.ok ? '' : ' FAILED'}`);
    for (const n of r.notes) console.log(`  ${n}`);
  }
}

function rowsOver(r: Row, results: RunResult[]): number {
  return results.filter(
    (x) => x.scenario === r.scenario && x.recoveryMs !== undefined && x.recoveryMs > r.targetMs,
  ).length;
}

async function main(): Promise<void> {
  const p = parseParams();
  const machine = machineFacts(p.brokers);
  const logDir = mkdtempSync(join(tmpdir(), 'taskmanager-failover-'));
  const load = (): string => loadavg()[0]?.toFixed(2) ?? '?';
  const loadBefore = load();
  console.log(
    `failover: ${p.runs} run(s) of ${p.only.join(',')}${p.smoke ? ' (smoke)' : ''}, CLIs at -l ${p.logLevel}; ` +
      `${describeMachine(machine)}; load average ${loadBefore}; recovery in seconds`,
  );
  let broker: OwnBroker | undefined;
  // Ctrl+C: nothing of ours may stay behind (CLIs by the pids we spawned, our broker by its data dir).
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      void Promise.all([killAll(), broker?.dispose(logDir)]).finally(() => process.exit(130));
    });
  }
  const results = await runAll(p, logDir, (b) => (broker = b));
  const rows = p.only.map((id) =>
    rowOf(
      id,
      results.filter((r) => r.scenario === id),
    ),
  );
  printRows(rows, results);
  console.log(`CLI logs and schedule files: ${logDir}; load average ${loadBefore} before, ${load()} after`);
  writeResults('failover', {
    params: p,
    machine,
    loadBefore,
    loadAfter: load(),
    logDir,
    rows,
    runs: results,
  });
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

main().catch(async (err: unknown) => {
  console.error(err);
  await killAll();
  process.exit(1);
});
