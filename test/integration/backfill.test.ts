import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { brokers, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

interface BackfillJson {
  ok: boolean;
  message: string;
  dryRun: boolean;
  published: string[];
  present: string[];
  pending: string[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

describe('taskscheduler backfill against a running group', () => {
  const t = useTaskTopic({ beforeEach, afterEach, killAll });
  let group: string;
  let file: string;

  beforeEach(async () => {
    group = uniqueName('backfill');
    file = join(await mkdtemp(join(tmpdir(), 'tm-backfill-')), 'schedule.json');
    const entry = {
      Id: 'b',
      Cron: '* * * * * *',
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
    };
    await writeFile(file, JSON.stringify([{ ...entry, Topic: t.topic }]));
  });

  const backfill = async (...args: string[]) => {
    const r = await runCli(
      'taskscheduler',
      ['backfill', 'b', ...args, '-b', brokers(), '--group', group],
      90_000,
    );
    return { ...r, json: () => JSON.parse(r.stdout) as BackfillJson };
  };
  /** The instants of b's tasks in the topic, in the order the reader got them (one partition: publishing order). */
  const instants = () =>
    t.reader.values<TaskMessage>(t.topic, (m) => m.scheduleId === 'b').map((m) => m.scheduledFor);

  it('should publish each missing instant once, oldest first; a dry run and a second run publish nothing', async () => {
    startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
    await waitFor(() => instants().length >= 3, { timeoutMs: 60_000, what: 'b firing three times' });
    // The group is new: nothing fired before its first fire F.
    const first = Date.parse(instants()[0]!);
    const missing = [5, 4, 3, 2, 1].map((s) => iso(first - s * 1000));
    const fired = [0, 1, 2].map((s) => iso(first + s * 1000));
    const range = ['--from', iso(first - 5000), '--to', iso(first + 2000), '--json'];

    const dry = await backfill(...range, '--dry-run');
    expect(dry.code, dry.output).toBe(0);
    expect(dry.json()).toMatchObject({
      ok: true,
      dryRun: true,
      published: missing.map((at) => `b@${at}`),
      present: fired.map((at) => `b@${at}`),
      pending: [],
    });
    await t.reader.caughtUp(t.topic);
    expect(instants().filter((at) => at < fired[0]!)).toEqual([]);

    const done = await backfill(...range);
    expect(done.code, done.output).toBe(0);
    expect(done.json()).toMatchObject({ ok: true, dryRun: false, published: missing.map((at) => `b@${at}`) });
    await t.reader.caughtUp(t.topic);
    // What went out: the missing instants, oldest first, after the fires that were already there.
    expect(instants().filter((at) => at < fired[0]!)).toEqual(missing);

    const again = await backfill(...range);
    expect(again.code, again.output).toBe(0);
    expect(again.json()).toMatchObject({
      published: [],
      present: [...missing, ...fired].map((at) => `b@${at}`),
    });
    await t.reader.caughtUp(t.topic);
    const inRange = instants().filter((at) => at >= missing[0]! && at <= fired[2]!);
    expect([...inRange].sort()).toEqual([...missing, ...fired]);

    // The text form: one line of outcome, then each taskId with what became of it.
    const text = await runCli('taskscheduler', [
      'backfill',
      'b',
      '--from',
      iso(first - 5000),
      '--to',
      iso(first - 4000),
      '-b',
      brokers(),
      '--group',
      group,
    ]);
    expect(text.code, text.output).toBe(0);
    expect(text.stdout).toMatch(
      /^ok: nothing to publish for b \(2 already had a task\) \(answered by \S+:\d+\)\n/,
    );
    expect(text.stdout).toContain(`b@${missing[0]}  already has a task`);
  });

  it('should refuse, in one line, a range in the future (exit 2), too many instants (exit 2) and an unknown Id (exit 1)', async () => {
    startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
    await waitFor(() => instants().length >= 1, { timeoutMs: 60_000, what: 'b firing' });
    const first = instants()[0]!;
    const now = Date.now();
    const future = await backfill('--from', iso(now - 5000), '--to', iso(now + 3_600_000));
    expect(future.code, future.output).toBe(2);
    expect(future.stdout).toMatch(
      /^failed: to \S+ is in the future \(it is \S+\): a backfill publishes only instants/,
    );
    const many = await backfill('--from', iso(now - 60_000), '--to', iso(now - 30_000), '--max', '10');
    expect(many.code, many.output).toBe(2);
    expect(many.stdout).toContain('holds more than 10 instants of b');
    const bad = await backfill('--from', 'yesterday', '--to', iso(now));
    expect(bad.code).toBe(2);
    expect(bad.output).toContain('--from "yesterday" is not an RFC 3339 date-time');
    const unknown = await runCli('taskscheduler', [
      'backfill',
      'nope',
      '--from',
      iso(now - 5000),
      '--to',
      iso(now - 1000),
      '-b',
      brokers(),
      '--group',
      group,
    ]);
    expect(unknown.code, unknown.output).toBe(1);
    expect(unknown.stdout).toMatch(/^failed: no schedule "nope" in group \S+ \(see taskscheduler status\)/);
    // Nothing was published for any of them: no instant before the first fire has a task.
    await t.reader.caughtUp(t.topic);
    expect(instants().filter((at) => at < first)).toEqual([]);
  });
});
