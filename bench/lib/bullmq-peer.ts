/**
 * The BullMQ peer of the consume benchmark (issue 25): `n` jobs added to a fresh queue with `addBulk` (not timed),
 * then one Worker, with our consumer's concurrency and a no-op processor, drains them. Imported only when the peer
 * runs, so `--smoke` needs neither bullmq nor Redis.
 *
 * Jobs are added with `removeOnComplete: true`, what a BullMQ user sets for throughput (no completed set growing
 * with every job); BullMQ's events stream stays on (its default), as our consumer's FINISHED events do.
 */
import { Queue, Worker } from 'bullmq';
import type { ConnectionOptions } from 'bullmq';
import { randomUUID } from 'node:crypto';
import { cpuPercent } from './report.js';
import { within } from '../../test/kit/wait.js';

/** Jobs per `addBulk` call while filling the queue. */
const ADD_BULK = 1000;

export interface BullmqPeerOptions {
  /** Of our own Redis on 127.0.0.1. */
  port: number;
  n: number;
  concurrency: number;
  /** The data of job `i` (our task message, so both read the same JSON). */
  data(i: number): Record<string, unknown>;
  timeoutMs: number;
  failures: string[];
  /** Label of the run in failures. */
  run: number;
  /** CPU used so far by Redis, ms (read as the worker starts and at the last job). */
  redisCpuMs(): number | undefined;
}

export interface BullmqRun {
  jobs: number;
  /** Adding the `n` jobs (not part of the rate). */
  addMs: number;
  /** Worker created to ready (its connections up). */
  joinMs: number;
  /** First job completed to the last. */
  ms: number;
  /** Worker created to the last completed. */
  totalMs: number;
  /** This process's CPU from the worker's start to the last job, % of a core. */
  cpuPct: number;
  /** Redis's over the same time; undefined without /proc. */
  redisCpuPct: number | undefined;
}

export async function runBullmqPeer(o: BullmqPeerOptions): Promise<BullmqRun> {
  // maxRetriesPerRequest null: what BullMQ requires of a worker's connection (it would override it and warn).
  const connection: ConnectionOptions = { host: '127.0.0.1', port: o.port, maxRetriesPerRequest: null };
  const name = `bench-tp-bullmq-${randomUUID()}`;
  const queue = new Queue(name, { connection });
  let worker: Worker | undefined;
  try {
    const a0 = performance.now();
    for (let from = 0; from < o.n; from += ADD_BULK) {
      const jobs = [];
      for (let i = from; i < Math.min(o.n, from + ADD_BULK); i++)
        jobs.push({ name: 'NoopProcessor', data: o.data(i), opts: { removeOnComplete: true } });
      await queue.addBulk(jobs);
    }
    const addMs = performance.now() - a0;
    let completed = 0;
    let firstAt = 0;
    let lastAt = 0;
    let redisAtEnd: number | undefined;
    let allDone: () => void = () => undefined;
    const done = new Promise<void>((r) => (allDone = r));
    const cpu0 = process.cpuUsage();
    const redis0 = o.redisCpuMs();
    const t0 = performance.now();
    const w = new Worker(name, async () => undefined, { connection, concurrency: o.concurrency });
    worker = w;
    w.on('completed', () => {
      const now = performance.now();
      if (completed === 0) firstAt = now;
      if (++completed === o.n) {
        lastAt = now;
        redisAtEnd = o.redisCpuMs();
        allDone();
      }
    });
    w.on('failed', (job, err) =>
      o.failures.push(`BullMQ run ${o.run}: job ${job?.id} failed: ${err.message}`),
    );
    w.on('error', (err) => o.failures.push(`BullMQ run ${o.run}: worker error: ${err.message}`));
    await w.waitUntilReady();
    const joinMs = performance.now() - t0;
    await within(done, o.timeoutMs, () => `the BullMQ worker completed only ${completed} of ${o.n} jobs`);
    return {
      jobs: completed,
      addMs,
      joinMs,
      ms: lastAt - firstAt,
      totalMs: lastAt - t0,
      cpuPct: cpuPercent(cpu0, lastAt - t0),
      redisCpuPct:
        redis0 === undefined || redisAtEnd === undefined
          ? undefined
          : ((redisAtEnd - redis0) / (lastAt - t0)) * 100,
    };
  } finally {
    await worker?.close();
    await queue.obliterate({ force: true });
    await queue.close();
  }
}
