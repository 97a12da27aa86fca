/**
 * API tasks in a scheduler: heap per held definition, CPU per create and the cost of gaining state partitions.
 * Needs a broker with the topics (KAFKA_BROKERS, default 127.0.0.1:9092; scripts/kafka-local and
 * scripts/create-topics.sh). One real `taskscheduler -s none` (its own process, a fresh group), then N one-shots due
 * tomorrow written straight into taskmanager.tasks with the codecs, as taskapi writes them (not over HTTP):
 *
 *   - CPU per create: the scheduler's CPU (from /proc) from the first write until it has armed all N, over N (a bulk
 *     write); then over `--trickle` more creates written 10 at a time at `--rate` a second, as taskapi's clients
 *     would, with the N held;
 *   - heap per record of another group: a scheduler of another group, started with the first, holds none of the
 *     N but keeps each key's version (the write rules need it);
 *   - heap per definition: the lowest `nodejs_heap_size_used_bytes` over a few seconds (after a GC) with N armed,
 *     minus the same before, over N;
 *   - gaining partitions: a second instance joins (each then holds its share), then stops (the first reads the
 *     topic again for the partitions it gains): the times their "read … keys in … ms" lines give.
 *
 *   npm run bench:api-shard -- [--n 100000] [--trickle 2000] [--rate 200] [--cli dist/src/scheduler/cli.js] [--smoke]
 *   --cli: the scheduler to measure, e.g. one built from an older commit (it then has no gaining figures).
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Partitioners } from 'kafkajs';
import type { Message } from 'kafkajs';
import { definitionRecord } from '../src/shared/tasks/definition.js';
import { OP_HEADER } from '../src/shared/tasks/task-log.js';
import { killSchedulers, restingHeap, startScheduler, stopScheduler } from './lib/bench-scheduler.js';
import { processCpuMs } from './lib/child-cpu.js';
import { produceAll, rawKafka } from './lib/kafka-bench.js';
import { benchBrokers, describeMachine, machineFacts, writeResults } from './lib/report.js';
import { taskDefinition } from '../test/kit/definitions.js';
import { ROOT } from '../test/kit/processes.js';
import { sleep, waitFor } from '../test/kit/wait.js';

// Killed, the benchmark kills the schedulers it started.
process.once('SIGTERM', () => {
  killSchedulers();
  process.exit(143);
});

const readLines = (out: string): string[] =>
  out.split('\n').filter((l) => / task\(s\) from taskmanager\.tasks .*read \d+ keys in \d+ ms/.test(l));

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100000' },
      trickle: { type: 'string', default: '2000' },
      rate: { type: 'string', default: '200' },
      cli: { type: 'string' },
      smoke: { type: 'boolean', default: false },
    },
  });
  // --smoke: seconds, to keep the benchmark working (CI).
  const n = values.smoke ? 500 : Number(values.n);
  const trickle = values.smoke ? 50 : Number(values.trickle);
  const rate = values.smoke ? 500 : Number(values.rate);
  const heapMs = values.smoke ? 1000 : 6000;
  const cli = values.cli ?? join(ROOT, 'dist/src/scheduler/cli.js');
  const group = `bench-shard-${randomUUID().slice(0, 8)}`;
  console.log(
    `${describeMachine(machineFacts(benchBrokers()))}\nscheduler ${cli}, group ${group}, ${n} one-shots`,
  );
  const [a, other] = await Promise.all([
    startScheduler(cli, group, benchBrokers()),
    startScheduler(cli, `${group}-other`, benchBrokers()),
  ]);
  const [heapBefore, otherBefore] = await Promise.all([restingHeap(a, heapMs), restingHeap(other, heapMs)]);
  const cpuBefore = processCpuMs(a.child.pid ?? -1) ?? NaN;
  const dueAt = new Date(Date.now() + 24 * 3600_000).toISOString();
  const record = (i: number): Message => {
    const def = taskDefinition(
      `${group}-${i}`,
      group,
      'taskTopic',
      { runAt: dueAt },
      {
        payload: { to: `user${i}@example.com`, template: 'welcome', padding: 'x'.repeat(120) },
      },
    );
    const r = definitionRecord(def, { [OP_HEADER]: 'create' });
    return { key: r.key, value: r.value as Buffer, headers: r.headers };
  };
  const kafka = rawKafka(benchBrokers(), 'bench-api-shard');
  const writeStart = Date.now();
  await produceAll(kafka, 'taskmanager.tasks', n, record, { batch: 1000, inFlight: 2 });
  const writtenMs = Date.now() - writeStart;
  await waitFor(async () => (await a.metrics()).get('taskmanager_scheduler_schedules') === n, {
    timeoutMs: 600_000,
    intervalMs: 250,
    what: () => `all ${n} armed\n${a.output().slice(-2000)}`,
  });
  const appliedMs = Date.now() - writeStart;
  const cpuPerCreateMs = ((processCpuMs(a.child.pid ?? -1) ?? NaN) - cpuBefore) / n;
  const [heapAfter, otherAfter] = await Promise.all([restingHeap(a, heapMs), restingHeap(other, heapMs)]);
  const heapPerDefinition = (heapAfter - heapBefore) / n;
  const heapPerOtherRecord = (otherAfter - otherBefore) / n;
  await stopScheduler(other);
  const held = (await a.metrics()).get('taskmanager_scheduler_api_definitions');
  console.log(
    `written in ${writtenMs} ms, all armed ${appliedMs} ms after the first write; CPU per create ` +
      `${cpuPerCreateMs.toFixed(3)} ms; heap ${(heapBefore / 2 ** 20).toFixed(0)} → ${(heapAfter / 2 ** 20).toFixed(0)} MB, ` +
      `${(heapPerDefinition / 1024).toFixed(2)} KB per definition; held ${held ?? '(no gauge)'}; ` +
      `another group's scheduler: ${(heapPerOtherRecord / 1024).toFixed(2)} KB per record`,
  );
  // What the scheduler uses doing nothing (heartbeats, polls) over as long as the trickle takes.
  const cpuNow = (): number => processCpuMs(a.child.pid ?? -1) ?? NaN;
  const idleFrom = cpuNow();
  const idleWall = Date.now();
  await sleep((trickle / rate) * 1000);
  const idleMs = cpuNow() - idleFrom;
  const idleWallMs = Date.now() - idleWall;
  const trickleStart = cpuNow();
  const trickleWall = Date.now();
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  for (let i = n; i < n + trickle; i += 10) {
    const messages = Array.from({ length: Math.min(10, n + trickle - i) }, (_, k) => record(i + k));
    await Promise.all([
      producer.send({ topic: 'taskmanager.tasks', acks: -1, messages }),
      sleep((10 / rate) * 1000),
    ]);
  }
  await producer.disconnect();
  await waitFor(async () => (await a.metrics()).get('taskmanager_scheduler_schedules') === n + trickle, {
    timeoutMs: 120_000,
    what: () => `the trickle armed\n${a.output().slice(-2000)}`,
  });
  const trickleCpuMs = cpuNow() - trickleStart;
  const cpuPerTrickleCreateMs = trickleCpuMs / trickle;
  // Idle CPU scaled to the trickle's wall time, taken off.
  const netPerTrickleCreateMs = (trickleCpuMs - (idleMs * (Date.now() - trickleWall)) / idleWallMs) / trickle;
  console.log(
    `${trickle} more creates at ${rate}/s with ${n} held: CPU per create ${cpuPerTrickleCreateMs.toFixed(3)} ms ` +
      `(${netPerTrickleCreateMs.toFixed(3)} ms over the idle ${((idleMs / idleWallMs) * 100).toFixed(1)} % of a core)`,
  );
  let gaining: Record<string, unknown> | undefined;
  if (held !== undefined) {
    const b = await startScheduler(cli, group, benchBrokers());
    await waitFor(
      async () => {
        const [ma, mb] = await Promise.all([a.metrics(), b.metrics()]);
        const [ha, hb] = [
          ma.get('taskmanager_scheduler_api_definitions'),
          mb.get('taskmanager_scheduler_api_definitions'),
        ];
        return (
          ha !== undefined &&
          hb !== undefined &&
          ha + hb === n + trickle &&
          hb > 0 &&
          ma.get('taskmanager_scheduler_ready') === 1
        );
      },
      { timeoutMs: 300_000, what: () => `the split\n${b.output().slice(-2000)}` },
    );
    const split = {
      a: (await a.metrics()).get('taskmanager_scheduler_api_definitions'),
      b: (await b.metrics()).get('taskmanager_scheduler_api_definitions'),
      bRead: readLines(b.output()).at(-1),
    };
    await stopScheduler(b);
    const regainFrom = Date.now();
    await waitFor(
      async () => (await a.metrics()).get('taskmanager_scheduler_api_definitions') === n + trickle,
      {
        timeoutMs: 300_000,
        what: () => `the regain\n${a.output().slice(-2000)}`,
      },
    );
    const regainMs = Date.now() - regainFrom;
    gaining = { split, regainMs, aRead: readLines(a.output()).at(-1) };
    console.log(
      `second instance: held ${split.a} + ${split.b}; its read: ${split.bRead ?? '?'}\n` +
        `after it stopped, the first held all ${n + trickle} ${regainMs} ms later (rebalance included); its read: ` +
        `${gaining['aRead'] as string}`,
    );
  }
  await stopScheduler(a);
  writeResults('api-tasks-shard', {
    params: { n, trickle, rate, cli, smoke: values.smoke },
    machine: machineFacts(benchBrokers()),
    writtenMs,
    appliedMs,
    cpuPerCreateMs,
    heapBefore,
    heapAfter,
    heapPerDefinition,
    heapPerOtherRecord,
    cpuPerTrickleCreateMs,
    netPerTrickleCreateMs,
    idleCpuPercent: (idleMs / idleWallMs) * 100,
    gaining,
  });
}

await main();
