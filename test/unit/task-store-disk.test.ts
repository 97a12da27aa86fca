import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/shared/logger.js';
import type { Logger } from '../../src/shared/logger.js';
import { systemClock } from '../../src/shared/clock.js';
import type { InRecord, TopicLayout } from '../../src/shared/kafka/index.js';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import type { TaskDefinition } from '../../src/shared/tasks/definition.js';
import { BASE_HEADER, OP_HEADER } from '../../src/shared/tasks/task-log.js';
import { encodeJson } from '../../src/shared/messages.js';
import { CLEAN_FILE, DiskTaskDefs, STORE_FILE } from '../../src/api/disk-task-defs.js';
import { KafkaStore } from '../../src/api/kafka-store.js';
import { TaskStore } from '../../src/api/task-store.js';
import { openTaskStore, staleReason, storeDirOf } from '../../src/api/task-store-dir.js';
import type { OpenedStore } from '../../src/api/task-store-dir.js';
import { TaskView } from '../../src/api/task-view.js';
import { FakeClock } from './helpers/fake-clock.js';
import { MemoryKafka } from './helpers/memory-kafka.js';
import { taskDefinition } from './helpers/entries.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');

function def(id: string, i: number, over: Partial<TaskDefinition> = {}): TaskDefinition {
  return taskDefinition(id, new Date(T0 + i * 1000).toISOString(), {
    processor: i % 3 === 0 ? 'email' : 'NoopProcessor',
    payload: { to: `${id}@example.com`, body: 'x'.repeat(200) },
    enabled: i % 4 !== 0,
    ...over,
  });
}

/** A partitioned log: each record gets the next offset of its partition, as Kafka gives them. */
class Log {
  readonly records: InRecord[] = [];
  private readonly ends = new Map<number, number>();
  append(id: string, value: TaskDefinition | null, headers: Record<string, string> = {}): InRecord {
    const partition = id.length % 2;
    const offset = this.ends.get(partition) ?? 0;
    this.ends.set(partition, offset + 1);
    const r: InRecord = {
      topic: TASKS_TOPIC,
      partition,
      offset: String(offset),
      key: Buffer.from(id),
      value: value === null ? null : encodeJson(value),
      headers,
      timestamp: '0',
    };
    this.records.push(r);
    return r;
  }
  layout(clusterId = 'c1'): TopicLayout {
    return {
      clusterId,
      partitions: new Map([0, 1].map((p) => [p, { low: 0n, high: BigInt(this.ends.get(p) ?? 0) }])),
      deleteRetentionMs: 24 * 3600_000,
    };
  }
}

function recordingLogger(lines: string[]): Logger {
  const keep = (message: string) => void lines.push(message);
  const logger: Logger = { ...silentLogger, error: keep, warn: keep, info: keep, child: () => logger };
  return logger;
}

/** Every page of a view, as ids with their names and versions. */
function pages(view: TaskView, q: { status?: 'PAUSED'; processor?: string } = {}): string[] {
  const seen: string[] = [];
  let page = view.list({ limit: 7, ...q });
  for (;;) {
    seen.push(...page.items.map((t) => `${t.def.id}:${t.def.name}:${t.version}:${t.state}`));
    if (!page.last) return seen;
    page = view.list({ limit: 7, after: page.last, ...q });
  }
}

/** A log of creates, updates, a rejected update (left unrepaired) and deletes. */
function busyLog(n: number): Log {
  const log = new Log();
  const v = new Map<string, string>();
  for (let i = 0; i < n; i++)
    v.set(`t${i}`, log.append(`t${i}`, def(`t${i}`, i), { [OP_HEADER]: 'create' }).offset);
  for (let i = 0; i < n; i += 5)
    log.append(`t${i}`, def(`t${i}`, i, { name: `renamed${i}` }), {
      [OP_HEADER]: 'update',
      [BASE_HEADER]: v.get(`t${i}`)!,
    });
  for (let i = 1; i < n; i += 7)
    log.append(`t${i}`, null, { [OP_HEADER]: 'delete', [BASE_HEADER]: v.get(`t${i}`)! });
  log.append('t2', def('t2', 2, { name: 'lost' }), { [OP_HEADER]: 'update', [BASE_HEADER]: '999' });
  return log;
}

function fold(view: TaskView, records: InRecord[]): TaskView {
  for (const r of records) view.onTaskRecord(r);
  view.seal();
  return view;
}

let dataDir: string;
const opened: OpenedStore[] = [];

async function open(layout: TopicLayout, logger: Logger = silentLogger): Promise<OpenedStore> {
  const o = await openTaskStore(dataDir, layout, logger, Date.now());
  opened.push(o);
  return o;
}

async function close(o: OpenedStore): Promise<void> {
  opened.splice(opened.indexOf(o), 1);
  await o.defs.close();
  o.release();
}

/** A store holding the fold of `log`, closed; the path of its file. */
async function stored(log: Log): Promise<string> {
  const first = await open(log.layout());
  fold(new TaskView(silentLogger, undefined, first.defs), log.records);
  await close(first);
  return join(storeDirOf(dataDir, 'c1'), STORE_FILE);
}

function overwrite(file: string, at: number, bytes: Buffer): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, bytes, 0, bytes.length, at);
  closeSync(fd);
}

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'taskapi-store-test-'));
});

afterEach(async () => {
  for (const o of [...opened]) await close(o);
  rmSync(dataDir, { recursive: true, force: true });
});

describe('when taskapi keeps its view of taskmanager.tasks on disk', () => {
  it('should answer the same pages, filters and versions as a view folded in memory', async () => {
    const log = busyLog(60);
    const memory = fold(new TaskView(silentLogger), log.records);
    const o = await open(log.layout());
    const disk = fold(new TaskView(silentLogger, undefined, o.defs), log.records);
    expect(pages(disk)).toEqual(pages(memory));
    expect(pages(disk, { status: 'PAUSED' })).toEqual(pages(memory, { status: 'PAUSED' }));
    expect(pages(disk, { processor: 'email' })).toEqual(pages(memory, { processor: 'email' }));
    expect([...disk.unrepaired].sort()).toEqual([...memory.unrepaired].sort());
    expect(disk.unrepaired.has('t2')).toBe(true);
    expect(disk.get('t5')?.def.payload).toEqual(def('t5', 5).payload);
  });

  it('should load the index and checkpoint at the next open and answer the same pages without reading the topic again', async () => {
    const log = busyLog(60);
    const first = await open(log.layout());
    const before = fold(new TaskView(silentLogger, undefined, first.defs), log.records);
    const expected = pages(before);
    await close(first);

    const again = await open(log.layout());
    expect(again.how).toMatch(/^from the checkpoint of /);
    const ends = [...log.layout().partitions].map(([p, { high }]) => [p, String(high)]);
    expect([...again.from.fromOffsets!].sort()).toEqual(ends.sort());
    const after = new TaskView(silentLogger, undefined, again.defs);
    after.seal();
    expect(pages(after)).toEqual(expected);
    expect([...after.unrepaired].sort()).toEqual([...before.unrepaired].sort());
    expect(after.recordsRead).toBe(0);
  });

  it('should apply a deletion of a task and keep the tombstone version for the write rules', async () => {
    const log = new Log();
    const created = log.append('ab', def('ab', 1), { [OP_HEADER]: 'create' });
    const deleted = log.append('ab', null, { [OP_HEADER]: 'delete', [BASE_HEADER]: created.offset });
    const first = await open(log.layout());
    fold(new TaskView(silentLogger, undefined, first.defs), log.records);
    await close(first);
    const again = await open(log.layout());
    const view = new TaskView(silentLogger, undefined, again.defs);
    expect(view.get('ab')).toBeUndefined();
    expect(view.keyState('ab')).toEqual({ version: deleted.offset, present: false });
  });
});

describe('when the store cannot be followed on from', () => {
  it('should rebuild a store whose file was overwritten with garbage, saying so in one line with its path', async () => {
    const log = busyLog(20);
    const file = await stored(log);
    overwrite(file, 0, Buffer.alloc(8192, 0x5a));

    const lines: string[] = [];
    const again = await open(log.layout(), recordingLogger(lines));
    expect(lines).toEqual([
      `task store ${file} is unreadable (it is not an LMDB file (its meta pages are damaged)): rebuilding it from ${TASKS_TOPIC}`,
    ]);
    expect(again.from).toEqual({ fromBeginning: true });
    const view = fold(new TaskView(silentLogger, undefined, again.defs), log.records);
    expect(view.size).toBe(fold(new TaskView(silentLogger), log.records).size);
  });

  it('should rebuild a store whose file is damaged inside (a probe process reads it first)', async () => {
    const log = busyLog(200);
    const file = await stored(log);
    // As a taskapi that died with the store open leaves it: no clean-close mark.
    rmSync(join(storeDirOf(dataDir, 'c1'), CLEAN_FILE));
    overwrite(file, 2 * 4096, Buffer.alloc(3 * 4096, 0xff));

    const lines: string[] = [];
    const again = await open(log.layout(), recordingLogger(lines));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(`^task store ${file} is unreadable \\(reading it .*the file is damaged\\): rebuilding it`),
    );
    expect(again.defs.checkpoint).toBeUndefined();
  });

  it('should probe the file only when it was not closed cleanly, or changed since', async () => {
    const log = busyLog(20);
    const file = await stored(log);
    const mark = join(storeDirOf(dataDir, 'c1'), CLEAN_FILE);
    expect(existsSync(mark)).toBe(true);
    const clean = await open(log.layout());
    expect(clean.defs.probed).toBe(false);
    expect(clean.how).toBe(`from the checkpoint of ${file} (closed cleanly)`);
    // Open now: a process dying from here on leaves no mark.
    expect(existsSync(mark)).toBe(false);
    await close(clean);

    const crashed = await stored(log);
    rmSync(mark);
    const afterCrash = await open(log.layout());
    expect(afterCrash.defs.probed).toBe(true);
    expect(afterCrash.how).toMatch(/read whole by a probe process first: it was not closed cleanly/);
    await close(afterCrash);

    // Changed after its clean close (written by something else): probed.
    const later = new Date(Date.now() + 60_000);
    utimesSync(crashed, later, later);
    const changed = await open(log.layout());
    expect(changed.defs.probed).toBe(true);
  });

  it('should rebuild when its checkpoint is ahead of the topic (the topic was re-created)', async () => {
    await stored(busyLog(20));
    const lines: string[] = [];
    const recreated = new Log();
    recreated.append('ab', def('ab', 1));
    const again = await open(recreated.layout(), recordingLogger(lines));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('ahead of the topic');
    expect(again.from).toEqual({ fromBeginning: true });
    expect(new TaskView(silentLogger, undefined, again.defs).size).toBe(0);
  });

  it('should say why a checkpoint does not fit: other partitions, records deleted unread, older than delete.retention.ms', () => {
    const ck = {
      clusterId: 'c1',
      topic: TASKS_TOPIC,
      partitions: 2,
      offsets: new Map([[0, '5']]),
      savedAt: T0,
    };
    const layout = (low: bigint, count = 2): TopicLayout => ({
      clusterId: 'c1',
      partitions: new Map(Array.from({ length: count }, (_, p) => [p, { low, high: 10n }])),
      deleteRetentionMs: 3600_000,
    });
    expect(staleReason(ck, layout(0n), T0 + 1000)).toBeUndefined();
    expect(staleReason(ck, layout(0n, 3), T0)).toContain('it has 3 now');
    expect(staleReason(ck, layout(6n), T0)).toContain("before the topic's first offset 6");
    expect(staleReason(ck, layout(0n), T0 + 2 * 3600_000)).toContain('delete.retention.ms');
    expect(staleReason(ck, { ...layout(0n), clusterId: 'c2' }, T0)).toContain('cluster c1, not c2');
    const { deleteRetentionMs: _unknown, ...noRetention } = layout(0n);
    expect(staleReason(ck, noRetention, T0 + 2 * 3600_000)).toBeUndefined();
    expect(staleReason(ck, noRetention, T0 + 25 * 3600_000)).toContain("Kafka's default");
  });
});

describe('when two taskapi instances share a data dir', () => {
  it('should give the second a private store, say so in one line, and remove it when it stops', async () => {
    const log = busyLog(10);
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => undefined, 60000)']);
    try {
      const shared = storeDirOf(dataDir, 'c1');
      mkdirSync(shared, { recursive: true });
      writeFileSync(join(shared, 'taskapi.pid'), `${other.pid} ${hostname()}`);
      const lines: string[] = [];
      const second = await open(log.layout(), recordingLogger(lines));
      expect(lines[0]).toBe(
        `task store ${shared} is in use by another taskapi (pid ${other.pid}); this one keeps a private store in ${shared}-pid${process.pid}, built from ${TASKS_TOPIC} and removed at exit (give each taskapi its own --data-dir)`,
      );
      expect(second.defs.where).toBe(join(`${shared}-pid${process.pid}`, STORE_FILE));
      await close(second);
      expect(existsSync(`${shared}-pid${process.pid}`)).toBe(false);
    } finally {
      other.kill();
    }
  });

  it('should leave alone the folder of a taskapi on another host (a container sharing the volume)', async () => {
    const shared = storeDirOf(dataDir, 'c1');
    mkdirSync(shared, { recursive: true });
    writeFileSync(join(shared, 'taskapi.pid'), '1 another-host');
    const lines: string[] = [];
    const o = await open(busyLog(10).layout(), recordingLogger(lines));
    expect(o.defs.where).toBe(join(`${shared}-pid${process.pid}`, STORE_FILE));
    expect(lines[0]).toContain(
      `is in use by another taskapi (pid 1 on host another-host; if it is gone, delete ${join(shared, 'taskapi.pid')})`,
    );
  });

  it('should take over the folder of a taskapi that died without letting go of it', async () => {
    const log = busyLog(10);
    const shared = storeDirOf(dataDir, 'c1');
    mkdirSync(shared, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    writeFileSync(join(shared, 'taskapi.pid'), `${dead} ${hostname()}`);
    const o = await open(log.layout());
    expect(o.defs.where).toBe(join(shared, STORE_FILE));
  });
});

describe('when taskapi restarts over its store', () => {
  it('should read only the records written since its checkpoint and list the same tasks', async () => {
    const kafka = new MemoryKafka();
    kafka.partitions.set(TASKS_TOPIC, 3);
    const start = async () => {
      const o = await open(await kafka.topicLayout(TASKS_TOPIC));
      const store = new KafkaStore({ kafka: kafka.client(), logger: silentLogger, clock: systemClock });
      const tasks = new TaskStore({
        store,
        logger: silentLogger,
        clock: systemClock,
        defs: o.defs,
        from: o.from,
      });
      await store.start(tasks.topics());
      tasks.started();
      return { o, store, tasks };
    };
    const a = await start();
    for (let i = 0; i < 30; i++) await a.tasks.create(def(`task-${i}`, i), 'test');
    expect(a.tasks.view.recordsRead).toBe(30);
    const expected = pages(a.tasks.view);
    await a.store.stop();
    await close(a.o);

    // Written while no taskapi runs (by another instance, or a tool).
    const producer = kafka.client().producer();
    await producer.sendPlaced(
      ['late-1', 'late-2'].map((id) => ({ topic: TASKS_TOPIC, key: id, value: encodeJson(def(id, 99)) })),
    );

    const b = await start();
    expect(b.tasks.view.recordsRead).toBe(2);
    expect(b.tasks.view.size).toBe(32);
    expect(pages(b.tasks.view).filter((t) => !t.startsWith('late-'))).toEqual(expected);
    await b.store.stop();
  });
});

describe('when the store is flushed', () => {
  it('should store the offsets reached with the definitions they brought', async () => {
    const log = busyLog(10);
    const o = await open(log.layout());
    fold(new TaskView(silentLogger, undefined, o.defs), log.records);
    await o.defs.flush();
    await close(o);
    const dir = storeDirOf(dataDir, 'c1');
    const reopened = await DiskTaskDefs.open(dir, silentLogger);
    const ends = [...log.layout().partitions].filter(([, { high }]) => high > 0n);
    expect(reopened.checkpoint?.offsets).toEqual(new Map(ends.map(([p, { high }]) => [p, String(high)])));
    expect([...reopened.indexed()].length).toBe(fold(new TaskView(silentLogger), log.records).size);
    await reopened.close();
  });
});

describe('deleted ids in the store', () => {
  it("should be forgotten once older than the topic's delete.retention.ms, also those of an older store", async () => {
    const dir = join(dataDir, 'forget');
    mkdirSync(dir);
    let now = T0;
    const defs = await DiskTaskDefs.open(dir, silentLogger, () => now);
    defs.madeFrom({ clusterId: 'c1', topic: TASKS_TOPIC, partitions: 2 });
    defs.remove('old', '5', T0 - 3600_000);
    defs.remove('recent', '6', T0 - 60_000);
    defs.applied(0, '6');
    await defs.flush();
    await defs.close();
    // A store written before tombstones had timestamps: a bare version.
    const { open: openLmdb } = await import('lmdb');
    const root = openLmdb({ path: join(dir, STORE_FILE), maxDbs: 8, encoding: 'msgpack' });
    await root.openDB<string, string>({ name: 'deleted' }).put('legacy', '2');
    await root.close();

    const again = await DiskTaskDefs.open(dir, silentLogger, () => now);
    expect(['old', 'recent', 'legacy'].map((id) => again.deletedVersion(id))).toEqual(['5', '6', '2']);
    expect(await again.forgetDeletedBefore(T0 - 600_000)).toBe(1);
    expect(['old', 'recent', 'legacy'].map((id) => again.deletedVersion(id))).toEqual([undefined, '6', '2']);
    // The legacy id ages from the first pass that saw it.
    now = T0 + 3600_000;
    expect(await again.forgetDeletedBefore(T0 + 1)).toBe(2);
    expect(['recent', 'legacy'].map((id) => again.deletedVersion(id))).toEqual([undefined, undefined]);
    await again.close();
  });

  it('should be forgotten by taskapi once older than the retention, and kept until then', async () => {
    const clock = new FakeClock(T0);
    const kafka = new MemoryKafka(clock);
    const store = new KafkaStore({ kafka: kafka.client(), logger: silentLogger, clock });
    const lines: string[] = [];
    const logger = { ...silentLogger, info: (m: string) => void lines.push(m) } as Logger;
    const tasks = new TaskStore({ store, logger, clock, deleteRetentionMs: 1000 });
    await store.start(tasks.topics());
    tasks.started();
    await tasks.create(def('gone', 1), 'test');
    const created = tasks.view.get('gone')!;
    await tasks.remove('gone', created.version, 'test');
    expect(tasks.view.keyState('gone')?.present).toBe(false);
    expect(await tasks.forgetDeleted()).toBe(0);
    clock.advance(1100);
    expect(await tasks.forgetDeleted()).toBe(1);
    expect(tasks.view.keyState('gone')).toBeUndefined();
    expect(lines.join('\n')).toMatch(
      /forgot 1 task id\(s\) deleted more than taskmanager\.tasks's delete\.retention\.ms \(1000 ms\) ago/,
    );
    tasks.stop();
    await store.stop();
  });
});
