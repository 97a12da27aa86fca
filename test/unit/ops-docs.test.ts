import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConsumerMetrics } from '../../src/consumer/metrics.js';
import { SchedulerMetrics } from '../../src/scheduler/metrics.js';
import { processRegistry } from '../../src/shared/ops/registry.js';
import { apiMetrics } from '../../src/api/metrics.js';

const ROOT = resolve(import.meta.dirname, '../..');

/** Every series name our processes can expose (histograms with their _bucket, _sum and _count). */
async function exposedNames(): Promise<Set<string>> {
  const scheduler = processRegistry('taskscheduler');
  new SchedulerMetrics(scheduler, 'g', {
    ownedPartitions: () => 0,
    schedules: () => ({ armed: 0, paused: 0, disabled: 0 }),
    queuedFires: () => 0,
    ready: () => true,
    apiDefinitions: () => 0,
  });
  const consumer = processRegistry('taskconsumer');
  new ConsumerMetrics(consumer, { inFlight: () => 0, ready: () => true });
  const api = processRegistry('taskapi');
  apiMetrics(api, { tasks: () => 0, ready: () => true });
  const names = new Set<string>();
  for (const r of [scheduler, consumer, api]) {
    for (const m of await r.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram')
        for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
    }
  }
  return names;
}

describe('docs/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(readFileSync(resolve(ROOT, 'docs/grafana-dashboard.json'), 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };

  it('should only query metrics our processes expose', async () => {
    const names = await exposedNames();
    const used = dashboard.panels.flatMap((p) =>
      p.targets.flatMap((t) => t.expr.match(/\b(?:taskmanager|process|nodejs)_[a-z0-9_]+\b/g) ?? []),
    );
    expect(used.length).toBeGreaterThan(10);
    expect(used.filter((n) => !names.has(n))).toEqual([]);
  });

  it('should show every taskmanager metric somewhere', async () => {
    const names = [...(await exposedNames())].filter((n) => n.startsWith('taskmanager_'));
    const text = JSON.stringify(dashboard);
    const base = (n: string) => n.replace(/_(bucket|sum|count)$/, '');
    expect([...new Set(names.map(base))].filter((n) => !text.includes(n))).toEqual([]);
  });
});
