/**
 * What every benchmark shares: percentiles, machine facts, a plain-text table, and the JSON result file under
 * `bench/results/`.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { PLAINTEXT, readKafkaConfig } from '../../src/shared/kafka/security.js';
import type { KafkaConnection } from '../../src/shared/kafka/security.js';
import { ROOT } from '../../test/kit/processes.js';

export interface Summary {
  p50: number;
  p99: number;
  max: number;
}

/** p50, p99 and max of `values` (nearest rank); NaN for an empty list. */
export function summarize(values: ArrayLike<number>): Summary {
  if (values.length === 0) return { p50: NaN, p99: NaN, max: NaN };
  const s = Float64Array.from(values).sort();
  const at = (q: number): number => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)] ?? NaN;
  return { p50: at(0.5), p99: at(0.99), max: s[s.length - 1] ?? NaN };
}

export interface MachineFacts {
  cores: number;
  cpuModel: string;
  memGiB: number;
  node: string;
  kafka: string;
  brokers: string;
}

export function machineFacts(brokers: string[]): MachineFacts {
  return {
    cores: cpus().length,
    cpuModel: cpus()[0]?.model ?? '?',
    memGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kafka: process.env['KAFKA_VERSION'] ?? '4.3.1',
    brokers: brokers.join(','),
  };
}

export function describeMachine(m: MachineFacts): string {
  return `${m.cores} cores, Node ${m.node}, Kafka ${m.kafka} at ${m.brokers}`;
}

/** Brokers from KAFKA_BROKERS, default the local broker of `scripts/kafka-local`. */
export function benchBrokers(): string[] {
  return (process.env['KAFKA_BROKERS'] ?? '127.0.0.1:9092').split(',').map((b) => b.trim());
}

let connection: KafkaConnection | undefined;

/** TLS/SASL from KAFKA_CONFIG (a Kafka client properties file, as `--kafka-config` takes), else plaintext. */
export function benchConnection(): KafkaConnection {
  const file = process.env['KAFKA_CONFIG'];
  connection ??= file ? readKafkaConfig(file) : PLAINTEXT;
  return connection;
}

/** Version of an installed package, '?' when it cannot be read. */
export function versionOf(pkg: string): string {
  try {
    const file = join(ROOT, 'node_modules', pkg, 'package.json');
    return (JSON.parse(readFileSync(file, 'utf8')) as { version?: string }).version ?? '?';
  } catch {
    return '?';
  }
}

/** Prints a Markdown table: the first column left-aligned, the others right-aligned. */
export function printTable(head: string[], body: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: string[]): string =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join(' | ')} |`;
  console.log(line(head));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const b of body) console.log(line(b));
}

/** A number for a table cell: rounded, or '-' when absent. */
export function cell(x: number | undefined, digits = 0): string {
  return x === undefined || Number.isNaN(x) ? '-' : x.toFixed(digits);
}

/** Writes `bench/results/<name>-<timestamp>.json` and prints its path. */
export function writeResults(name: string, data: Record<string, unknown>): string {
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify({ at: new Date().toISOString(), ...data }, null, 2)}\n`);
  console.log(`results: ${file}`);
  return file;
}

/** CPU used by this process between two `process.cpuUsage()` readings, as % of one core over `wallMs`. */
export function cpuPercent(since: NodeJS.CpuUsage, wallMs: number): number {
  const d = process.cpuUsage(since);
  return ((d.user + d.system) / 1000 / wallMs) * 100;
}

/** A reader of positive integer options from parseArgs values: `--name`, else `dflt`; anything else throws. */
export function positiveInts(
  values: Record<string, string | boolean | undefined>,
): (name: string, dflt: number) => number {
  return (name, dflt) => {
    const v = values[name];
    const x = Number(v ?? dflt);
    if (!Number.isInteger(x) || x < 1) throw new Error(`--${name} must be a positive integer (got ${v})`);
    return x;
  };
}
