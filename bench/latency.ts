/**
 * Latency benchmark (issue "Benchmarks", item 5): under light load, how long after a task's scheduled instant does
 * its processor start? Our GroupScheduler and TaskConsumer run together in this process, N schedules
 * `* * * * * *` for a window of W seconds, with a processor that notes `Date.now()` when it starts
 * (latency = that minus the message's `scheduledFor`; targets p50 ≤ 5 ms, p99 ≤ 25 ms).
 *
 * Baselines in the same run, same rate: a plain kafkajs producer sends N task messages at each whole second
 * (acks=all, not transactional) to (1) a plain kafkajs consumer, latency = consumed at minus that second, and (2) our
 * TaskConsumer with the same processor. (1) is the floor kafkajs and the broker set here; (2) minus (1) is our
 * consumer's overhead; ours minus (2) is the scheduler's (timer, transaction). Each stage is reported. The three
 * run one after another, in R rounds (raw, plain, ours, raw, …) whose samples are pooled: the machine is noisy.
 *
 *   npm run bench:latency -- [--n 50] [--window 20] [--rounds 2] [--concurrency 10] [--smoke]
 *   env: BENCH_TOPIC (prefix of the topics made; default bench-latency-<random>), KAFKA_BROKERS, KAFKA_VERSION,
 *        BENCH_LOG_LEVEL (our consumer's log level; default warn)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { ProcessorRegistry } from '../src/processors/registry.js';
import type { GroupSchedulerOptions } from '../src/scheduler/group-scheduler.js';
import { rawKafka, rawProducer, taskRecord, startRawConsumer } from './lib/kafka-bench.js';
import { startOurConsumer } from './lib/our-consumer.js';
import { benchEntries, startOurs } from './lib/ours.js';
import {
  benchBrokers,
  cell,
  describeMachine,
  machineFacts,
  printTable,
  summarize,
  versionOf,
  writeResults,
} from './lib/report.js';
import { TIMING_PROCESSOR, timingProcessor } from './lib/timing-processor.js';
import { poll, sleep, within } from '../test/kit/wait.js';
import { createTaskTopics, deleteGroups, deleteTopics } from '../test/kit/kafka.js';

const PARTITIONS = 12;

interface Params {
  n: number;
  windowS: number;
  rounds: number;
  concurrency: number;
  smoke: boolean;
  brokers: string[];
  topic: string;
}

function parseParams(): Params {
  const { values } = parseArgs({
    options: {
      n: { type: 'string' },
      window: { type: 'string' },
      rounds: { type: 'string' },
      concurrency: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  const smoke = values.smoke === true;
  const int = (name: string, v: string | undefined, dflt: number): number => {
    const x = Number(v ?? dflt);
    if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} must be a positive integer (got ${v})`);
    return x;
  };
  return {
    n: int('n', values.n, smoke ? 20 : 50),
    windowS: int('window', values.window, smoke ? 2 : 20),
    rounds: int('rounds', values.rounds, smoke ? 1 : 2),
    concurrency: int('concurrency', values.concurrency, 10),
    smoke,
    brokers: benchBrokers(),
    topic: process.env['BENCH_TOPIC'] ?? `bench-latency-${randomBytes(3).toString('hex')}`,
  };
}

const nextSecond = (ms: number): number => Math.ceil(ms / 1000) * 1000;

/** What one pipeline measured: counts and raw latencies (ms), pooled over rounds before they are summarized. */
interface Pipeline {
  name: string;
  samples: number;
  missing: number;
  dup: number;
  /** Consumed (ours: processor started) − scheduled instant. */
  latency: number[];
  /** Handed to the producer − scheduled instant: timer and (ours) fire loop. */
  handed: number[];
  /** Acknowledged (ours: transaction committed) − scheduled instant. */
  acked: number[];
  /** Consumed − acknowledged. */
  afterAck: number[];
}

function pool(a: Pipeline | undefined, b: Pipeline): Pipeline {
  if (!a) return b;
  return {
    name: a.name,
    samples: a.samples + b.samples,
    missing: a.missing + b.missing,
    dup: a.dup + b.dup,
    latency: [...a.latency, ...b.latency],
    handed: [...a.handed, ...b.handed],
    acked: [...a.acked, ...b.acked],
    afterAck: [...a.afterAck, ...b.afterAck],
  };
}

/** Counts of the samples whose instant lies in [from, to), against n per second; and their latencies. */
function tally(
  n: number,
  from: number,
  to: number,
  samples: Sample[],
): Pick<Pipeline, 'samples' | 'missing' | 'dup' | 'latency'> {
  const seen = new Set<string>();
  let dup = 0;
  const latency: number[] = [];
  for (const s of samples) {
    if (s.scheduledMs < from || s.scheduledMs >= to) continue;
    const key = `${s.id}@${s.scheduledMs}`;
    if (seen.has(key)) dup++;
    else seen.add(key);
    latency.push(s.atMs - s.scheduledMs);
  }
  return { samples: latency.length, missing: (n * (to - from)) / 1000 - seen.size, dup, latency };
}

/** Waits until `count()` reaches `expected` or `graceMs` passed (stragglers of the last second). */
async function settle(count: () => number, expected: number, graceMs: number): Promise<void> {
  await poll(() => count() >= expected, graceMs);
}

/** Latency of one pipeline, split where the producer's acknowledgement comes back. */
interface Sample {
  id: string;
  scheduledMs: number;
  /** Consumed (raw) or processor started (ours). */
  atMs: number;
  /** The task message's firedAt (ours). */
  firedMs: number;
}

/** A consumer under test: calls back with each task it gets; joined once it has its partitions. */
interface Sink {
  joined: Promise<unknown>;
  stop(): Promise<void>;
}

/** The raw kafkajs consumer: a task is "consumed" when its record is in hand and parsed. */
async function rawSink(
  p: Params,
  topic: string,
  group: string,
  onSample: (s: Sample) => void,
): Promise<Sink> {
  return startRawConsumer(rawKafka(p.brokers, 'bench-latency'), topic, group, (value, atMs) => {
    const m = JSON.parse(value.toString('utf8')) as { scheduleId: string; scheduledFor: string };
    onSample({ id: m.scheduleId, scheduledMs: Date.parse(m.scheduledFor), atMs, firedMs: NaN });
  });
}

/** Our TaskConsumer: a task is "consumed" when its processor starts. */
async function ourSink(
  p: Params,
  topic: string,
  group: string,
  onSample: (s: Sample) => void,
): Promise<Sink> {
  const registry = new ProcessorRegistry([
    timingProcessor((task, atMs) => {
      const scheduledMs = Date.parse(task.scheduledFor);
      onSample({ id: task.scheduleId, scheduledMs, atMs, firedMs: Date.parse(task.firedAt) });
    }),
  ]);
  return startOurConsumer({
    brokers: p.brokers,
    topic,
    groupId: group,
    registry,
    concurrency: p.concurrency,
    onOutcome: () => undefined,
  });
}

/**
 * A plain kafkajs producer (acks=all) sends N task messages at each whole second, not awaiting the acks; `sink`
 * consumes them. Latency = consumed at minus that second.
 */
async function runPlainProducer(
  p: Params,
  name: string,
  suffix: string,
  sink: (p: Params, topic: string, group: string, onSample: (s: Sample) => void) => Promise<Sink>,
): Promise<Pipeline> {
  const kafka = rawKafka(p.brokers, 'bench-latency');
  const topic = `${p.topic}-${suffix}`;
  const group = `bench-latency-${suffix}-${randomUUID()}`;
  await createTaskTopics(kafka, [topic], PARTITIONS, { fresh: true });
  const samples: Sample[] = [];
  const sends = new Map<number, { handedMs: number; ackedMs?: number }>();
  const consumer = await sink(p, topic, group, (s) => samples.push(s));
  const producer = await rawProducer(kafka);
  try {
    await within(consumer.joined, 30_000, () => `${name}: consumer did not join its group`);
    // One warm-up second outside the window, as ours gets.
    const from = nextSecond(Date.now() + 1000) + 1000;
    const to = from + p.windowS * 1000;
    for (let t = from - 1000; t < to; t += 1000) {
      await sleep(t - Date.now());
      const messages = Array.from({ length: p.n }, (_, i) => taskRecord(`plain-${i}`, t, TIMING_PROCESSOR));
      const send: { handedMs: number; ackedMs?: number } = { handedMs: Date.now() };
      sends.set(t, send);
      // Not awaited: the next second's send must not wait for this one's ack.
      producer.send({ topic, acks: -1, messages }).then(
        () => (send.ackedMs = Date.now()),
        (err: unknown) => console.error(`${name}: producer: ${String(err)}`),
      );
    }
    const inside = (t: number): boolean => t >= from && t < to;
    await settle(() => samples.filter((s) => inside(s.scheduledMs)).length, p.n * p.windowS, 5000);
    const afterAck: number[] = [];
    for (const s of samples.filter((x) => inside(x.scheduledMs))) {
      const acked = sends.get(s.scheduledMs)?.ackedMs;
      if (acked !== undefined) afterAck.push(s.atMs - acked);
    }
    const secs = [...sends].filter(([t]) => inside(t));
    return {
      name,
      ...tally(p.n, from, to, samples),
      handed: secs.map(([t, s]) => s.handedMs - t),
      acked: secs.flatMap(([t, s]) => (s.ackedMs === undefined ? [] : [s.ackedMs - t])),
      afterAck,
    };
  } finally {
    await producer.disconnect();
    await consumer.stop();
    await deleteGroups(kafka, [group]);
    await deleteTopics(kafka, [topic]);
  }
}

async function runOurs(p: Params): Promise<Pipeline> {
  const admin = rawKafka(p.brokers, 'bench-latency');
  const topic = p.topic;
  const consumerGroup = `bench-latency-consumer-${randomUUID()}`;
  await createTaskTopics(admin, [topic], PARTITIONS, { fresh: true });
  const samples: Sample[] = [];
  const startedAt = new Map<string, number>();
  const acks: Array<{ key: string; scheduledMs: number; ackedMs: number }> = [];
  const onAcked: GroupSchedulerOptions['onAcked'] = (fires, ackedAtMs) => {
    for (const f of fires) {
      acks.push({ key: `${f.entry.id}@${f.scheduledFor}`, scheduledMs: f.scheduledFor, ackedMs: ackedAtMs });
    }
  };
  const consumer = await ourSink(p, topic, consumerGroup, (s) => {
    samples.push(s);
    startedAt.set(`${s.id}@${s.scheduledMs}`, s.atMs);
  });
  let ours: Awaited<ReturnType<typeof startOurs>> | undefined;
  try {
    await within(consumer.joined, 30_000, () => 'our consumer did not join its group');
    const specs = Array.from({ length: p.n }, () => '* * * * * *');
    const entries = benchEntries(specs, topic).map((e) => ({ ...e, processor: TIMING_PROCESSOR }));
    ours = await startOurs(p.brokers, entries, onAcked);
    // The first second after take-over is warm-up (connections, first transaction), outside the window.
    const from = nextSecond(Date.now() + 1000) + 1000;
    const to = from + p.windowS * 1000;
    await sleep(to - Date.now());
    const inside = (t: number): boolean => t >= from && t < to;
    await settle(() => samples.filter((s) => inside(s.scheduledMs)).length, p.n * p.windowS, 5000);
    const acked = acks.filter((a) => inside(a.scheduledMs));
    const afterAck: number[] = [];
    for (const a of acked) {
      const started = startedAt.get(a.key);
      if (started !== undefined) afterAck.push(started - a.ackedMs);
    }
    return {
      name: 'taskmanager scheduler → TaskConsumer',
      ...tally(p.n, from, to, samples),
      handed: samples.filter((s) => inside(s.scheduledMs)).map((s) => s.firedMs - s.scheduledMs),
      acked: acked.map((a) => a.ackedMs - a.scheduledMs),
      afterAck,
    };
  } finally {
    await ours?.scheduler.stop({ deadlineMs: 10_000 });
    await consumer.stop();
    await deleteGroups(admin, [consumerGroup, ...(ours ? [ours.group] : [])]);
    await deleteTopics(admin, [topic]);
  }
}

function printResults(p: Params, pipelines: Pipeline[]): void {
  const f = (x: number): string => cell(x, 1);
  printTable(
    ['pipeline', 'tasks/s', 'samples', 'missing', 'dup', 'p50 ms', 'p99 ms', 'max ms'],
    pipelines.map((r) => {
      const s = summarize(r.latency);
      return [
        r.name,
        String(p.n),
        String(r.samples),
        String(r.missing),
        String(r.dup),
        f(s.p50),
        f(s.p99),
        f(s.max),
      ];
    }),
  );
  console.log(
    '\nby stage, p50 / p99 ms (ours: handed over = firedAt, acked = transaction committed; consumed = processor start)\n',
  );
  const both = (xs: number[]): string => {
    const s = summarize(xs);
    return `${f(s.p50)} / ${f(s.p99)}`;
  };
  const stage = (name: string, pick: (r: Pipeline) => number[]): string[] => [
    name,
    ...pipelines.map((r) => both(pick(r))),
  ];
  printTable(
    ['stage', 'raw → raw', 'raw → TaskConsumer', 'scheduler → TaskConsumer'],
    [
      stage('scheduled → handed to the producer', (r) => r.handed),
      stage('scheduled → acked', (r) => r.acked),
      stage('acked → consumed', (r) => r.afterAck),
      stage('scheduled → consumed', (r) => r.latency),
    ],
  );
  const r = summarize(pipelines[0]?.latency ?? []);
  const o = summarize(pipelines[2]?.latency ?? []);
  console.log(
    `\nours/raw: p50 ×${cell(o.p50 / r.p50, 1)}, p99 ×${cell(o.p99 / r.p99, 1)}; ` +
      `targets p50 ≤ 5 ms: ${o.p50 <= 5 ? 'met' : 'MISSED'}, p99 ≤ 25 ms: ${o.p99 <= 25 ? 'met' : 'MISSED'} ` +
      `(--concurrency ${p.concurrency})`,
  );
}

async function main(): Promise<void> {
  const p = parseParams();
  const machine = machineFacts(p.brokers);
  console.log(
    `latency: ${p.n} schedules '* * * * * *', window ${p.windowS} s × ${p.rounds} round(s)${p.smoke ? ' (smoke)' : ''}; ` +
      `${describeMachine(machine)}; load ${loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}; topics ${p.topic}*\n`,
  );
  let raw: Pipeline | undefined;
  let plain: Pipeline | undefined;
  let ours: Pipeline | undefined;
  for (let round = 1; round <= p.rounds; round++) {
    const suffix = p.rounds === 1 ? '' : `-${round}`;
    const q = { ...p, topic: `${p.topic}${suffix}` };
    raw = pool(
      raw,
      await runPlainProducer(q, `kafkajs ${versionOf('kafkajs')} producer → consumer`, 'raw', rawSink),
    );
    plain = pool(plain, await runPlainProducer(q, 'kafkajs producer → TaskConsumer', 'plain', ourSink));
    ours = pool(ours, await runOurs(q));
  }
  const pipelines = [raw, plain, ours].filter((x): x is Pipeline => x !== undefined);
  printResults(p, pipelines);
  console.log('');
  writeResults('latency', {
    params: p,
    machine,
    pipelines: pipelines.map(({ latency, handed, acked, afterAck, ...counts }) => ({
      ...counts,
      latencyMs: summarize(latency),
      handedMs: summarize(handed),
      ackedMs: summarize(acked),
      afterAckMs: summarize(afterAck),
    })),
  });
  if (pipelines.some((r) => r.missing > 0 || r.dup > 0)) process.exitCode = 1;
}

main().then(
  // kafkajs may leave sockets closing; the figures are out, so do not wait for them.
  () => process.exit(process.exitCode ?? 0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
