import { afterEach, describe, expect, it } from 'vitest';
import { smoke } from './helpers/bench.js';
import { deleteTopics, uniqueName } from './helpers/kafka.js';

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('bench/throughput.js --smoke', () => {
  const topic = uniqueName('bench-tp');

  // The benchmark deletes the topics it made; this catches what a failed run left.
  afterEach(() => deleteTopics([topic, `${topic}-e2e`, `${topic}-perf`]));

  it('should consume with both consumers, run scheduler to consumer, and report the broker limit', async () => {
    const { code, out } = await smoke('throughput', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| kafkajs [\d.]+ raw\s+\|\s+1 \|\s+3000 \|/);
    expect(out).toMatch(/\| taskmanager TaskConsumer\s+\|\s+2 \|\s+3000 \|/);
    expect(out).toMatch(/ours\/raw [\d.]+ %/);
    // The BullMQ peer needs Redis: never in a smoke run.
    expect(out).not.toMatch(/BullMQ/);
    expect(out).toMatch(/\| processed \(consumer\)\s+\|\s+[1-9]\d* \|/);
    expect(out).toMatch(/\| kafkajs [\d.]+ \(\d+\/request/);
    expect(out).toMatch(/\| ProducerPerformance .*\|\s+5000 \||SKIPPED ProducerPerformance/);
  });
});

describe('bench/latency.js --smoke', () => {
  const topic = uniqueName('bench-lat');

  afterEach(() => deleteTopics([topic, `${topic}-raw`]));

  it('should report latencies of the three pipelines with no task missing or duplicated', async () => {
    const { code, out } = await smoke('latency', topic);
    expect(code, out).toBe(0);
    const row = (name: string): RegExp =>
      new RegExp(`\\| ${name}\\s+\\|\\s+20 \\|\\s+40 \\|\\s+0 \\|\\s+0 \\|`);
    expect(out).toMatch(row('kafkajs [\\d.]+ producer → consumer'));
    expect(out).toMatch(row('kafkajs producer → TaskConsumer'));
    expect(out).toMatch(row('taskmanager scheduler → TaskConsumer'));
    expect(out).toMatch(/\| scheduled → consumed\s+\|\s+[\d.]+ \/ [\d.]+ \|/);
  });
});
