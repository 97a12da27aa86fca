/**
 * Kafka's own producer benchmark (`org.apache.kafka.tools.ProducerPerformance`), run from the jars the local
 * broker runs from (`$KAFKA_HOME/libs`, else `.kafka-local/<version>/lib` of scripts/kafka-local): the broker's
 * limit for a producer on this machine, to put the Node.js figures in proportion.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '../../test/kit/processes.js';

export interface PerfResult {
  records: number;
  recordsPerSec: number;
  mbPerSec: number;
  avgLatencyMs: number;
  maxLatencyMs: number;
  /** The line it was read from. */
  line: string;
}

/** Where the tool can run from, or why it cannot. */
export type PerfTool = { java: string; libs: string } | { missing: string };

export function findProducerPerf(): PerfTool {
  const java = process.env['JAVA_HOME'] ? join(process.env['JAVA_HOME'], 'bin', 'java') : 'java';
  const probe = spawnSync(java, ['-version'], { stdio: 'ignore' });
  if (probe.error || probe.status !== 0) return { missing: `no Java runtime (${java} -version failed)` };
  const home = process.env['KAFKA_HOME'];
  const libs = home
    ? join(home, 'libs')
    : join(ROOT, '.kafka-local', process.env['KAFKA_VERSION'] ?? '4.3.1', 'lib');
  const hasTools = existsSync(libs) && readdirSync(libs).some((f) => /^kafka-tools-\d.*\.jar$/.test(f));
  if (!hasTools)
    return { missing: `no kafka-tools jar in ${libs} (run scripts/kafka-local install or set KAFKA_HOME)` };
  return { java, libs };
}

/**
 * `50000 records sent, 41152.3 records/sec (11.77 MB/sec), 1203.35 ms avg latency, 1779.00 ms max latency, …`:
 * the summary ProducerPerformance prints last.
 */
export function parsePerfSummary(output: string): PerfResult {
  const re =
    /(\d+) records sent, ([\d.]+) records\/sec \(([\d.]+) MB\/sec\), ([\d.]+) ms avg latency, ([\d.]+) ms max latency/;
  const lines = output.split('\n').filter((l) => re.test(l));
  const line = lines[lines.length - 1];
  const m = line === undefined ? null : re.exec(line);
  if (!m || line === undefined)
    throw new Error(`no summary line in ProducerPerformance output:\n${output.slice(-2000)}`);
  return {
    records: Number(m[1]),
    recordsPerSec: Number(m[2]),
    mbPerSec: Number(m[3]),
    avgLatencyMs: Number(m[4]),
    maxLatencyMs: Number(m[5]),
    line: line.trim(),
  };
}

/** Runs ProducerPerformance (acks=all, no throttle) and parses its summary. */
export function runProducerPerf(
  tool: { java: string; libs: string },
  o: { brokers: string[]; topic: string; records: number; recordSize: number; timeoutMs?: number },
): Promise<PerfResult> {
  const args = [
    '-Xms256m',
    '-cp',
    `${tool.libs}/*`,
    // Quiet log4j: without a configuration it warns on stderr, which we keep only for failures.
    '-Dlog4j2.level=WARN',
    'org.apache.kafka.tools.ProducerPerformance',
    '--topic',
    o.topic,
    '--num-records',
    String(o.records),
    '--record-size',
    String(o.recordSize),
    '--throughput',
    '-1',
    '--producer-props',
    `bootstrap.servers=${o.brokers.join(',')}`,
    'acks=all',
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(tool.java, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code !== 0) {
        reject(new Error(`ProducerPerformance exited ${code ?? signal}:\n${(err || out).slice(-2000)}`));
        return;
      }
      try {
        resolve(parsePerfSummary(out));
      } catch (e) {
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
  });
}
