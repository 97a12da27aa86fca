/**
 * Thundering herd: N schedules all due in the same second. Ours: time from that instant until the last fire was
 * handed to the producer and until the last transaction was acknowledged by the broker. Baseline in the same run:
 * a plain kafkajs producer sending the very same records (task messages, SCHEDULED events, state records, built
 * by our encoder) with acks=all, timed from its first send to its last ack; and the same producer sending only the
 * task messages (what any producer of these tasks sends at least). Peers: node-cron and croner, time from
 * the instant to their last callback (they publish nothing).
 *
 *   npm run bench:herd -- [--n 10000] [--smoke] [--no-peers]   (env: BENCH_TOPIC, KAFKA_BROKERS, KAFKA_VERSION)
 *
 * `--no-peers` leaves out node-cron and croner (at 100k croner needs more than the default heap).
 */
import { parseArgs } from 'node:util';
import { Cron } from 'croner';
import { schedule as nodeCronSchedule } from 'node-cron';
import type { ScheduledTask } from 'node-cron';
import type { Fire } from '../src/scheduler/fire-loop.js';
import { FireEncoder } from '../src/scheduler/task-records.js';
import { rawKafka, rawProducer } from './lib/kafka-bench.js';
import { benchEntries, readPublished, startOurs } from './lib/ours.js';
import {
  benchBrokers,
  cell,
  describeMachine,
  machineFacts,
  printTable,
  versionOf,
  writeResults,
} from './lib/report.js';
import { sleep } from '../test/kit/wait.js';

interface Row {
  who: string;
  n: number;
  /** Instant to the last fire handed over (ours: the latest `firedAt`) or called back, ms. */
  lastHandedMs: number;
  /** Instant (baseline: first send) to the last broker ack, ms. */
  lastAckMs?: number;
  missing: number;
  notes: string[];
}

function parseParams(): { n: number; smoke: boolean; peers: boolean; brokers: string[]; topic: string } {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      peers: { type: 'boolean', default: true },
    },
    allowNegative: true,
  });
  const smoke = values.smoke === true;
  const n = Number(values.n ?? (smoke ? 500 : 10_000));
  if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive integer (got ${values.n})`);
  return {
    n,
    smoke,
    peers: values.peers !== false,
    brokers: benchBrokers(),
    topic: process.env['BENCH_TOPIC'] ?? 'benchTopic',
  };
}

/** A spec firing once a day at the whole second `ms` (UTC). */
function specAt(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCSeconds()} ${d.getUTCMinutes()} ${d.getUTCHours()} * * *`;
}

/** Far enough ahead for a start and a group join of N schedules. */
const leadMs = (n: number): number => 8000 + n / 20;
const wholeSecondAfter = (ms: number): number => Math.ceil(ms / 1000) * 1000;

async function runOurs(n: number, brokers: string[], topic: string): Promise<Row> {
  const at = wholeSecondAfter(Date.now() + leadMs(n));
  const entries = benchEntries(
    Array.from({ length: n }, () => specAt(at)),
    topic,
  );
  let acked = 0;
  let lastAck = NaN;
  let done: () => void = () => undefined;
  const allAcked = new Promise<void>((r) => (done = r));
  const run = await startOurs(brokers, entries, (fires, ackedAtMs) => {
    acked += fires.length;
    lastAck = ackedAtMs;
    if (acked >= n) done();
  });
  const notes = [`ready ${run.readyMs} ms after start, ${at - Date.now()} ms before the instant`];
  if (Date.now() >= at) notes.push('NOT READY BEFORE THE INSTANT: raise leadMs');
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((r) => (timer = setTimeout(r, at - Date.now() + 60_000)));
  await Promise.race([allAcked, timeout]);
  clearTimeout(timer);
  await run.scheduler.stop({ deadlineMs: 10_000 });
  const published = (await readPublished(run.kafka, topic, run.group)).filter((p) => p.scheduledMs === at);
  const lastFired = Math.max(...published.map((p) => p.firedMs));
  return {
    who: 'taskmanager (this tree)',
    n,
    lastHandedMs: lastFired - at,
    lastAckMs: lastAck - at,
    missing: n - new Set(published.map((p) => p.scheduleId)).size,
    notes,
  };
}

/** A message of the raw producer: key and value, in the shape kafkajs's Produce request copies fast. */
interface RawMessage {
  key: string | null;
  value: string | Buffer | null;
  partition: undefined;
  offsetDelta: number;
  timestampDelta: number;
}

/** The same records our scheduler writes for the herd, sent by a plain kafkajs producer (acks=all). */
/**
 * @param tasksOnly send only the task messages (the baseline issue 25's herd target is measured against: what any
 *   producer of these tasks has to send), not the SCHEDULED events and state records our scheduler writes with them.
 */
async function runRawProducer(n: number, brokers: string[], topic: string, tasksOnly: boolean): Promise<Row> {
  const kafka = rawKafka(brokers, 'bench-herd-raw');
  const producer = await rawProducer(kafka);
  const at = wholeSecondAfter(Date.now());
  const entries = benchEntries(
    Array.from({ length: n }, () => specAt(at)),
    topic,
  );
  const encoder = new FireEncoder('bench-herd-raw', 0, { host: 'bench', pid: process.pid, group: 'raw' });
  const fires: Fire[] = entries.map((entry) => ({ entry, scheduledFor: at }));
  const records = encoder.records(fires, Date.now()).filter((r) => !tasksOnly || r.topic === topic);
  // Records go where the Java partitioner puts their keys (the state records too, rather than all to one
  // partition), in requests of up to 3,000 records and 512 KiB with 4 in flight, under the broker's 1 MiB batch
  // limit (a batch of SCHEDULED events is up to 64 KiB). Each message has the shape our producer gives kafkajs
  // (see byTopic in src/shared/kafka/client.ts): kafkajs's Produce request copies `{ key, value }` about 50 times
  // slower, and the baseline should not pay for what a producer can avoid.
  const chunks: Array<Array<{ topic: string; messages: RawMessage[] }>> = [];
  for (let i = 0; i < records.length;) {
    const byTopic = new Map<string, RawMessage[]>();
    let bytes = 0;
    for (const start = i; i < records.length && i - start < 3000 && bytes < 512 * 1024; i++) {
      const r = records[i]!;
      bytes += r.value === null ? 0 : Buffer.byteLength(r.value);
      let list = byTopic.get(r.topic);
      if (!list) byTopic.set(r.topic, (list = []));
      list.push({ key: r.key, value: r.value, partition: undefined, offsetDelta: 0, timestampDelta: 0 });
    }
    chunks.push([...byTopic].map(([t, messages]) => ({ topic: t, messages })));
  }
  // Warm: metadata of every topic fetched and connections open before the clock starts (by sending the first
  // record of each topic twice: the same taskId, which every reader de-duplicates).
  await producer.sendBatch({
    acks: -1,
    topicMessages: (chunks[0] ?? []).map((t) => ({
      topic: t.topic,
      messages: t.messages.slice(0, 1),
    })),
  });
  const built = performance.now();
  try {
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let c = chunks[next++]; c; c = chunks[next++])
        await producer.sendBatch({ acks: -1, topicMessages: c });
    };
    await Promise.all([lane(), lane(), lane(), lane()]);
  } finally {
    await producer.disconnect();
  }
  const end = performance.now();
  return {
    who: tasksOnly ? 'raw kafkajs producer, task records only' : 'raw kafkajs producer (baseline)',
    n,
    lastHandedMs: 0,
    lastAckMs: end - built,
    missing: 0,
    notes: [`${records.length} records, ${chunks.length} requests, 4 in flight`],
  };
}

async function runNodeCron(n: number): Promise<Row> {
  const at = wholeSecondAfter(Date.now() + 2000 + n / 50);
  const tasks: ScheduledTask[] = [];
  let calls = 0;
  let last = NaN;
  for (let i = 0; i < n; i++) {
    const onTick = (): void => {
      calls++;
      last = Date.now();
    };
    tasks.push(
      nodeCronSchedule(specAt(at), onTick, { logger: { info() {}, warn() {}, error() {}, debug() {} } }),
    );
  }
  await sleep(at - Date.now() + 3000 + n / 100);
  for (const t of tasks) {
    await t.stop();
    await t.destroy();
  }
  return {
    who: `node-cron ${versionOf('node-cron')}`,
    n,
    lastHandedMs: last - at,
    missing: n - calls,
    notes: [],
  };
}

async function runCroner(n: number): Promise<Row> {
  const at = wholeSecondAfter(Date.now() + 2000 + n / 50);
  const jobs: Cron[] = [];
  let calls = 0;
  let last = NaN;
  for (let i = 0; i < n; i++) {
    jobs.push(
      new Cron(specAt(at), () => {
        calls++;
        last = Date.now();
      }),
    );
  }
  await sleep(at - Date.now() + 3000 + n / 100);
  for (const j of jobs) j.stop();
  return { who: `croner ${versionOf('croner')}`, n, lastHandedMs: last - at, missing: n - calls, notes: [] };
}

async function main(): Promise<void> {
  const p = parseParams();
  const machine = machineFacts(p.brokers);
  console.log(
    `herd: N=${p.n} schedules due in the same second${p.smoke ? ' (smoke)' : ''}; ${describeMachine(machine)}; ms`,
  );
  const rows: Row[] = [];
  for (const run of [
    () => runRawProducer(p.n, p.brokers, p.topic, false),
    () => runRawProducer(p.n, p.brokers, p.topic, true),
    () => runOurs(p.n, p.brokers, p.topic),
    ...(p.peers ? [() => runNodeCron(p.n), () => runCroner(p.n)] : []),
  ]) {
    const t0 = Date.now();
    const row = await run();
    row.notes.push(`run took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    rows.push(row);
  }
  const raw = rows[0]?.lastAckMs ?? NaN;
  const rawTasks = rows[1]?.lastAckMs ?? NaN;
  printTable(
    ['who', 'N', 'missing', 'last handed over / called', 'last acked', 'acked vs raw', 'vs raw tasks only'],
    rows.map((r) => [
      r.who,
      String(r.n),
      String(r.missing),
      cell(r.lastHandedMs),
      cell(r.lastAckMs),
      r.lastAckMs === undefined ? '-' : `${(r.lastAckMs / raw).toFixed(2)}x`,
      r.lastAckMs === undefined ? '-' : `${(r.lastAckMs / rawTasks).toFixed(2)}x`,
    ]),
  );
  for (const r of rows) for (const note of r.notes) console.log(`note (${r.who}): ${note}`);
  writeResults('herd', { params: p, machine, rows });
  if (rows.some((r) => r.who.startsWith('taskmanager') && r.missing > 0)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
