import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, TopicReader, uniqueName } from './helpers/kafka.js';
import { health, opsUrl, scrape, total } from './helpers/metrics.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

interface StatusJson {
  instances: Array<{ pid: number; partitions: number[] }>;
  unansweredPartitions: number[];
  entries: Array<{ id: string; state: string; owner: string; nextFireTimes: string[] }>;
}

describe('runtime control of a scheduler group (trigger, pause, resume, status) and its metrics', () => {
  let topic: string;
  let group: string;
  let file: string;
  let reader: TopicReader;

  beforeEach(async () => {
    topic = uniqueName('tasks');
    group = uniqueName('ctl');
    await createTopics([topic]);
    reader = await new TopicReader([topic]).start();
    const entries = [
      ...Array.from({ length: 12 }, (_, i) => ({ Id: `e${i}`, Cron: '* * * * * *' })),
      { Id: 'weekly', Cron: '0 0 9 * * MON' },
    ].map((e) => ({ ...e, Topic: topic, TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' } }));
    file = join(await mkdtemp(join(tmpdir(), 'tm-ctl-')), 'schedule.json');
    await writeFile(file, JSON.stringify(entries));
  });

  afterEach(async () => {
    await killAll();
    await reader.stop();
    await deleteTopics([topic]);
  });

  const scheduler = (): RunningCli =>
    startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group, '--metrics-port', '0']);
  const ctl = (...args: string[]) => runCli('taskscheduler', [...args, '-b', brokers(), '--group', group]);
  const status = async (): Promise<StatusJson> => {
    const r = await ctl('status', '--json');
    expect(r.code, r.output).toBe(0);
    return JSON.parse(r.stdout) as StatusJson;
  };
  const tasks = () => reader.values<TaskMessage>(topic);
  const firedBy = (pid: number) => tasks().filter((t) => t.scheduler.pid === pid).length;
  const firesOf = (id: string, after: number) =>
    tasks().filter((t) => t.scheduleId === id && Date.parse(t.scheduledFor) > after);

  it('should list every entry of a schedule too large for one reply record', async () => {
    // About 2.5 MB of status: more than the broker takes in one record batch (1 MiB).
    const n = 8000;
    await writeFile(
      file,
      JSON.stringify(
        Array.from({ length: n }, (_, i) => ({
          Id: `a-rather-long-schedule-id-of-a-large-installation-${String(i).padStart(5, '0')}`,
          Cron: '0 0 9 * * MON',
          Topic: topic,
          TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
        })),
      ),
    );
    const s = scheduler();
    await waitFor(async () => (await health(await opsUrl(s), '/readyz')).status === 200, {
      timeoutMs: 60_000,
      what: 'the scheduler ready',
    });
    const r = await status();
    expect(r.instances.map((i) => i.pid)).toEqual([s.pid]);
    expect(r.unansweredPartitions).toEqual([]);
    expect(new Set(r.entries.map((e) => e.id)).size).toBe(n);
    expect(r.entries.every((e) => e.nextFireTimes.length > 0 && e.owner.endsWith(`:${s.pid}`))).toBe(true);
  });

  it('should act through the owning instance and keep a pause across a restart of the owner', async () => {
    const a = scheduler();
    const b = scheduler();
    await waitFor(() => firedBy(a.pid) > 0 && firedBy(b.pid) > 0, { timeoutMs: 60_000, what: 'both firing' });

    // status: both instances answer, every partition covered, every entry listed with its owner.
    const s1 = await status();
    expect(s1.instances.map((i) => i.pid).sort()).toEqual([a.pid, b.pid].sort());
    expect(s1.unansweredPartitions).toEqual([]);
    expect(s1.entries.map((e) => e.id).sort()).toEqual(
      [...Array.from({ length: 12 }, (_, i) => `e${i}`), 'weekly'].sort(),
    );
    expect(s1.entries.find((e) => e.id === 'weekly')?.nextFireTimes[0]).toMatch(/T09:00:00.000Z$/);

    // trigger: a task of its own, off the whole second, committed before the CLI says ok.
    const t = await ctl('trigger', 'weekly');
    expect(t.code, t.output).toBe(0);
    const taskId = /as (weekly@\S+)/.exec(t.stdout)?.[1] ?? '';
    expect(taskId).toMatch(/^weekly@.*\.(?!000)\d{3}Z$/);
    await waitFor(() => tasks().some((x) => x.taskId === taskId), {
      timeoutMs: 10_000,
      what: 'the triggered task',
    });

    // pause: nothing fires after it.
    const p = await ctl('pause', 'e3');
    expect(p.code, p.output).toBe(0);
    const pausedAt = Date.now();
    const ownerPid = Number(/answered by [^:]+:(\d+)/.exec(p.stdout)?.[1]);
    const [owner, other] = ownerPid === a.pid ? [a, b] : [b, a];
    expect([a.pid, b.pid]).toContain(ownerPid);

    // The owner stops; the other takes e3 over and must keep it paused; then the owner comes back.
    owner.signal('SIGTERM');
    expect((await owner.exited).code).toBe(0);
    await waitFor(
      async () =>
        (await status()).instances.length === 1 && (await status()).unansweredPartitions.length === 0,
      {
        timeoutMs: 30_000,
        what: 'the survivor owning every partition',
      },
    );
    const restarted = scheduler();
    await waitFor(() => firedBy(restarted.pid) > 0, {
      timeoutMs: 60_000,
      what: 'the restarted instance firing',
    });
    const s2 = await status();
    expect(s2.entries.find((e) => e.id === 'e3')?.state).toBe('paused');
    expect(firesOf('e3', pausedAt + 1000)).toEqual([]);
    expect(firesOf('e4', pausedAt + 1000).length).toBeGreaterThan(3);

    // resume: fires again, from now.
    const resumedAt = Date.now();
    const r = await ctl('resume', 'e3');
    expect(r.code, r.output).toBe(0);
    await waitFor(() => firesOf('e3', resumedAt).length >= 2, { timeoutMs: 10_000, what: 'e3 firing again' });

    // An unknown entry is refused by name, exit 1.
    const u = await ctl('pause', 'nope');
    expect(u.code).toBe(1);
    expect(u.stdout).toContain('no schedule "nope"');

    // Metrics of the surviving instance moved with it all; it is ready.
    const base = await opsUrl(other);
    const m = await scrape(base);
    // It fired e4 while the owner was away (how often depends on when the restarted owner took e4 back).
    expect(total(m, 'taskmanager_scheduler_fires_total', { schedule: 'e4' })).toBeGreaterThan(0);
    expect(total(m, 'taskmanager_scheduler_fire_lag_seconds_count')).toBeGreaterThan(0);
    expect(total(m, 'taskmanager_scheduler_owned_partitions')).toBeGreaterThan(0);
    expect(total(m, 'process_cpu_seconds_total')).toBeGreaterThan(0);
    expect((await health(base, '/readyz')).status).toBe(200);
    expect((await health(base, '/healthz')).status).toBe(200);
  });

  it('should say clearly when no instance of the group answers', async () => {
    const r = await runCli('taskscheduler', [
      'trigger',
      'e1',
      '-b',
      brokers(),
      '--group',
      uniqueName('nobody'),
      '--timeout-ms',
      '1500',
    ]);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/no instance of scheduler group \S+ answered within 1.5 s/);
  });
});
