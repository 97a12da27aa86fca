import { afterEach, describe, expect, it } from 'vitest';
import { smoke } from './helpers/bench.js';
import { createTopics, deleteTopics, uniqueName } from './helpers/kafka.js';

/** Benchmarks are not tests, but CI runs each for a few seconds so they keep working (issue: benchmarks). */
describe('scheduler benchmarks, --smoke', () => {
  const topic = uniqueName('bench');

  afterEach(() => deleteTopics([topic]));

  it('bench/firing should report no early, duplicate or missed fire, beside node-cron and croner', async () => {
    await createTopics([topic]);
    const { code, out } = await smoke('firing', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager .*\|\s+0 \|\s+0 \|\s+0 \|/);
    expect(out).toContain('node-cron');
    expect(out).toContain('croner');
  });

  it('bench/herd should publish the whole herd and time it against a raw kafkajs producer', async () => {
    await createTopics([topic]);
    const { code, out } = await smoke('herd', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager \(this tree\)\s+\|\s+500 \|\s+0 \|/);
    expect(out).toContain('raw kafkajs producer (baseline)');
    expect(out).toMatch(/\| raw kafkajs producer, task records only\s+\|\s+500 \|/);
  });

  it('bench/footprint should report heap per schedule and arm time for us and the peers', async () => {
    const { code, out } = await smoke('footprint', topic);
    expect(code, out).toBe(0);
    expect(out).toMatch(/\| taskmanager \(this tree\)\s+\|\s+2000 \|\s+[\d.]+ KB \|/);
    expect(out).toContain('croner');
  });
});
