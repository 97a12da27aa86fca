import { existsSync, mkdtempSync, openSync, readdirSync, rmSync, writeSync, closeSync } from 'node:fs';
import { taskDefinition } from '../kit/definitions.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { encodeJson } from '../../src/shared/messages.js';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition } from '../../src/shared/tasks/definition.js';
import { startApi } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { produce, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { killAll } from './helpers/processes.js';
import { exitWithin } from '../kit/processes.js';

const N = 40;
const PAGE = 7;

/** "N record(s) of taskmanager.tasks read, HOW" of taskapi's start-up line. */
const READ_LINE = /; (\d+) record\(s\) of taskmanager\.tasks read, (.*?)(?: \w+=\S+)*$/m;

describe('taskapi with its store of task definitions on disk', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  const dataDir = mkdtempSync(join(tmpdir(), 'taskapi-store-'));
  let processor: string;
  let group: string;

  beforeEach(() => {
    processor = uniqueName('store-proc');
    group = uniqueName('store-group');
  });

  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  const start = async (): Promise<{ api: Api; read: number; how: string }> => {
    const api = await startApi(['--topic', fx.topic, '--group', group, '--data-dir', dataDir]);
    const m = READ_LINE.exec(api.cli.output);
    if (!m) throw new Error(`no start-up line with the records read:\n${api.cli.output.slice(-2000)}`);
    return { api, read: Number(m[1]), how: m[2]! };
  };

  const stop = async (api: Api): Promise<void> => {
    api.cli.signal('SIGTERM');
    const exit = await exitWithin(api.cli, 20_000);
    expect(exit.forced).toBe(false);
  };

  /** Every page of this test's tasks (filtered by its processor), and the paused ones, as id:version:status. */
  const pages = async (api: Api, extra = ''): Promise<string[]> => {
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const q = `processor=${processor}&limit=${PAGE}${extra}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const r = await api.call<{
        items: Array<{ id: string; version: string; status: string }>;
        nextCursor?: string;
      }>('GET', `/api/v1/tasks?${q}`);
      expect(r.status).toBe(200);
      seen.push(...r.body.items.map((t) => `${t.id}:${t.version}:${t.status}`));
      cursor = r.body.nextCursor;
    } while (cursor);
    return seen;
  };

  const everything = async (api: Api): Promise<{ all: string[]; paused: string[]; one: unknown }> => ({
    all: await pages(api),
    paused: await pages(api, '&status=PAUSED'),
    one: (await api.call('GET', `/api/v1/tasks/${processor}-3`)).body,
  });

  /** The store's LMDB file (one folder per cluster id). */
  const storeFile = (): string => {
    const [cluster] = readdirSync(dataDir, { withFileTypes: true }).filter((d) => d.isDirectory());
    return join(dataDir, cluster!.name, 'tasks', 'tasks.mdb');
  };

  it('should answer the same pages after a restart reading only the new records, after the store is deleted, and after it is damaged', async () => {
    let { api } = await start();
    for (let i = 0; i < N; i++) {
      const r = await api.call('POST', '/api/v1/tasks', {
        id: `${processor}-${i}`,
        processor,
        schedule: { every: '1h' },
        enabled: i % 4 !== 0,
        payload: { to: `user-${i}@example.com`, body: 'x'.repeat(200) },
      });
      expect(r.status).toBe(201);
    }
    const before = await everything(api);
    expect(before.all).toHaveLength(N);
    expect(before.paused).toHaveLength(N / 4);
    await stop(api);

    // Written while no taskapi runs (another instance, a tool): all a restart has to read.
    const late = (i: number): TaskDefinition =>
      taskDefinition(`${processor}-late-${i}`, group, fx.topic, { every: '1h' }, { name: 'late', processor });
    await produce(
      TASKS_TOPIC,
      [0, 1].map((i) => ({ key: late(i).id, value: encodeJson(late(i)) })),
    );

    let read: number;
    let how: string;
    ({ api, read, how } = await start());
    expect([read, how]).toEqual([2, `from the checkpoint of ${storeFile()} (closed cleanly)`]);
    const expected = await everything(api);
    expect(expected.all.filter((t) => !t.includes('-late-'))).toEqual(before.all);
    expect(expected.all).toHaveLength(N + 2);
    expect(expected.paused).toEqual(before.paused);
    expect(expected.one).toEqual(before.one);
    await stop(api);

    rmSync(join(storeFile(), '..'), { recursive: true });
    ({ api, read, how } = await start());
    expect(how).toBe('built from the start of the topic (new store)');
    expect(read).toBeGreaterThanOrEqual(N + 2);
    expect(api.cli.output).toContain(
      `no task store at ${storeFile()} (new, or deleted): building it from ${TASKS_TOPIC}`,
    );
    expect(await everything(api)).toEqual(expected);
    await stop(api);

    const fd = openSync(storeFile(), 'r+');
    writeSync(fd, Buffer.alloc(16 * 1024, 0x5a), 0, 16 * 1024, 0);
    closeSync(fd);
    ({ api, read, how } = await start());
    expect(how).toMatch(/^rebuilt: is unreadable/);
    expect(api.cli.problems().filter((l) => l.includes('task store'))).toEqual([
      expect.stringContaining(
        `task store ${storeFile()} is unreadable (it is not an LMDB file (its meta pages are damaged)): rebuilding it from ${TASKS_TOPIC}`,
      ),
    ]);
    expect(await everything(api)).toEqual(expected);
    await stop(api);
    expect(existsSync(storeFile())).toBe(true);
  });
});
