import { spawnSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { open } from 'lmdb';
import type { Database, RootDatabase } from 'lmdb';
import { AppError, errorMessage } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { StagedWrites } from './task-defs.js';
import type { Checkpoint, IndexFields, TaskDefs } from './task-defs.js';

/** The LMDB file in a store's folder (beside it, LMDB's `tasks.mdb-lock`). */
export const STORE_FILE = 'tasks.mdb';
/**
 * Written beside the file when the store was closed cleanly, with the file's identity then (inode, size,
 * modification time); removed when the store is opened, so a process that dies with it open leaves none.
 */
export const CLEAN_FILE = 'tasks.mdb-clean';
/** Bumped when what the store holds changes meaning: a store of another format is rebuilt. */
const FORMAT = 1;
/** A flush starts at once past this many staged keys, else within FLUSH_MS. */
const FLUSH_KEYS = 5000;
const FLUSH_MS = 20;
const CHECKPOINT_KEY = 'checkpoint';
/*
 * The address space the file is mapped into at open: 64 GiB, reserved, not allocated (lmdb writes the file with
 * pwrite and grows it as needed, and grows the map past this too). lmdb's default starts at 128 KB and remaps as the
 * file grows, and every earlier mapping stayed with the pages it had touched: a store built to 1M definitions (a
 * 1.1 GB file) held 2.5 GB of RSS in its mappings, against the file's size mapped once. Mapping in chunks
 * (`remapChunks`) kept that near 300-400 MB, but made a random read 6.6 times slower (28 against 4.3 µs) and a scan
 * 2.5 times: measured with 1M definitions here.
 */
const MAP_SIZE = 64 * 1024 ** 3;

/** A store that cannot be used as it is (unreadable, another format): the caller rebuilds it from the topic. */
export class StoreUnreadableError extends AppError {
  constructor(reason: string) {
    super('DECODE_ERROR', reason);
  }
}

/** How the definitions sit in LMDB (one environment, one write transaction per flush). */
interface Dbs {
  root: RootDatabase;
  /** id → the definition's JSON as its record carried it. */
  defs: Database<Buffer, string>;
  /** id → [version, createdAt, group, processor, enabled] of a present task. */
  index: Database<unknown, string>;
  /**
   * id → [the version of its tombstone, the tombstone's timestamp]; a bare version in a store written before
   * timestamps were kept (it ages from the first {@link DiskTaskDefs.forgetDeletedBefore} on).
   */
  deleted: Database<DeletedEntry | string, string>;
  /** id → 1 while its last record is rejected and unrepaired. */
  unrepaired: Database<number, string>;
}

type DeletedEntry = [version: string, atMs: number];

type StagedEntry = NonNullable<ReturnType<StagedWrites['defs']['get']>>;

type StoredCheckpoint = Omit<Checkpoint, 'offsets'> & { format: number; offsets: Array<[number, string]> };

/**
 * Task definitions in an LMDB file: a materialised view of `taskmanager.tasks`. Staged writes are readable at
 * once (they are looked up before the file until committed) and written every few ms in one transaction together with the offsets
 * they reach, so the file always holds the fold of the topic up to its checkpoint. A failed write stops the
 * writing (the file keeps its last checkpoint; what follows stays in memory) and is logged once.
 */
export class DiskTaskDefs implements TaskDefs {
  /** What takes new writes until the next flush. */
  private batch = new StagedWrites();
  /** The latest staged write of each key not committed yet, and the batch it is in (reads look here first). */
  private readonly pending = new Map<string, { e: StagedEntry; batch: StagedWrites }>();
  private readonly appliedOffsets: Map<number, string>;
  private identity: Omit<Checkpoint, 'offsets' | 'savedAt'> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private written: Promise<void> = Promise.resolve();
  private failed = false;
  private loaded: Array<[string, IndexFields]> | undefined;
  private loadedUnrepaired: string[] | undefined;

  private constructor(
    /** Whether a probe process read the whole file before it was opened (not after a clean close). */
    readonly probed: boolean,
    readonly where: string,
    private readonly db: Dbs,
    private readonly logger: Logger,
    readonly checkpoint: Checkpoint | undefined,
    private readonly clock: () => number,
  ) {
    this.appliedOffsets = new Map(checkpoint?.offsets ?? []);
  }

  /**
   * Opens the store in `dir` (made when missing) and reads its index and checkpoint; throws
   * {@link StoreUnreadableError} when the file is not a sound LMDB file of this format.
   */
  static async open(dir: string, logger: Logger, clock: () => number = Date.now): Promise<DiskTaskDefs> {
    const path = join(dir, STORE_FILE);
    const closedCleanly = takeCleanMark(dir, path);
    const exists = existsSync(path);
    if (exists) checkFile(path, !closedCleanly);
    let root: RootDatabase | undefined;
    try {
      root = open({ path, maxDbs: 8, encoding: 'msgpack', mapSize: MAP_SIZE });
      const db: Dbs = {
        root,
        defs: root.openDB<Buffer, string>({ name: 'defs', encoding: 'binary' }),
        index: root.openDB<unknown, string>({ name: 'index' }),
        deleted: root.openDB<DeletedEntry | string, string>({ name: 'deleted' }),
        unrepaired: root.openDB<number, string>({ name: 'unrepaired' }),
      };
      const store = new DiskTaskDefs(
        exists && !closedCleanly,
        path,
        db,
        logger,
        decodeCheckpoint(root.get(CHECKPOINT_KEY)),
        clock,
      );
      store.load();
      return store;
    } catch (err) {
      await root?.close().catch(() => undefined);
      throw err instanceof StoreUnreadableError ? err : new StoreUnreadableError(errorMessage(err));
    }
  }

  /** Removes the store's files from `dir` (a rebuild starts from an empty one). */
  static wipe(dir: string): void {
    for (const f of [STORE_FILE, `${STORE_FILE}-lock`, CLEAN_FILE]) rmSync(join(dir, f), { force: true });
  }

  /** What every checkpoint written from now on records besides the offsets. */
  madeFrom(identity: Omit<Checkpoint, 'offsets' | 'savedAt'>): void {
    this.identity = identity;
  }

  indexed(): Iterable<[string, IndexFields]> {
    const loaded = this.loaded;
    this.loaded = undefined;
    if (loaded) return loaded;
    return [...this.db.index.getRange({})].map(({ key, value }) => [key, decodeFields(key, value)]);
  }

  unrepairedKeys(): Iterable<string> {
    const loaded = this.loadedUnrepaired;
    this.loadedUnrepaired = undefined;
    return loaded ?? [...this.db.unrepaired.getKeys({})];
  }

  definition(id: string): Buffer | undefined {
    const staged = this.staged(id);
    if (staged) return 'value' in staged ? staged.value : undefined;
    return this.db.defs.get(id);
  }

  deletedVersion(id: string): string | undefined {
    const staged = this.staged(id);
    if (staged) return 'deleted' in staged ? staged.deleted : undefined;
    const d = this.db.deleted.get(id);
    return typeof d === 'string' ? d : d?.[0];
  }

  put(id: string, fields: IndexFields, value: Buffer): void {
    this.stage(id, { fields, value });
  }

  remove(id: string, version: string, atMs: number): void {
    this.stage(id, { deleted: version, atMs });
  }

  async forgetDeletedBefore(cutoffMs: number): Promise<number> {
    if (this.failed) return 0;
    const { deleted } = this.db;
    const writes: Array<Promise<unknown>> = [];
    let n = 0;
    for (const { key, value } of deleted.getRange({})) {
      if (typeof value === 'string') {
        if (!this.pending.has(key)) writes.push(deleted.put(key, [value, this.clock()]));
      } else if (value[1] < cutoffMs) {
        writes.push(deleted.remove(key));
        n++;
      }
    }
    await Promise.all(writes);
    return n;
  }

  markUnrepaired(id: string, unrepaired: boolean): void {
    this.batch.unrepaired.set(id, unrepaired);
    this.soon();
  }

  applied(partition: number, offset: string): void {
    const next = (BigInt(offset) + 1n).toString();
    this.appliedOffsets.set(partition, next);
    this.batch.offsets.set(partition, next);
    this.soon();
  }

  offsets(): ReadonlyMap<number, string> {
    return this.appliedOffsets;
  }

  /** Writes what is staged, with the offsets it reaches, in one transaction. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.batch;
    if (this.failed || (batch.size === 0 && batch.offsets.size === 0) || !this.identity) return this.written;
    this.batch = new StagedWrites();
    const { root, defs, index, deleted, unrepaired } = this.db;
    // lmdb commits every write queued in one turn of the event loop in one transaction: the definitions and the
    // checkpoint below are stored together or not at all.
    for (const [id, e] of batch.defs)
      if ('value' in e)
        quiet(defs.put(id, e.value), index.put(id, encodeFields(e.fields)), deleted.remove(id));
      else quiet(defs.remove(id), index.remove(id), deleted.put(id, [e.deleted, e.atMs]));
    for (const [id, u] of batch.unrepaired) quiet(u ? unrepaired.put(id, 1) : unrepaired.remove(id));
    const checkpoint: StoredCheckpoint = {
      format: FORMAT,
      ...this.identity,
      offsets: [...this.appliedOffsets],
      savedAt: this.clock(),
    };
    this.written = root.put(CHECKPOINT_KEY, checkpoint).then(
      () => {
        for (const id of batch.defs.keys())
          if (this.pending.get(id)?.batch === batch) this.pending.delete(id);
      },
      (err: unknown) => {
        this.failed = true;
        this.logger.error(
          `task store ${this.where}: write failed (${errorMessage(err)}); it keeps its last checkpoint and catches up from there at the next start`,
        );
      },
    );
    return this.written;
  }

  /** Writes what is staged and closes the file; marks it closed cleanly unless a write failed. */
  async close(): Promise<void> {
    await this.flush();
    await this.db.root.close();
    if (!this.failed)
      writeFileSync(join(dirname(this.where), CLEAN_FILE), identityOf(this.where), { mode: 0o600 });
  }

  /** Reads the index once at open, so a store that does not decode is found before it is used. */
  private load(): void {
    this.loaded = [...this.db.index.getRange({})].map(({ key, value }) => [key, decodeFields(key, value)]);
    this.loadedUnrepaired = [...this.db.unrepaired.getKeys({})];
  }

  private stage(id: string, e: StagedEntry): void {
    this.batch.defs.set(id, e);
    this.pending.set(id, { e, batch: this.batch });
    this.soon();
  }

  private staged(id: string): StagedEntry | undefined {
    return this.pending.get(id)?.e;
  }

  private soon(): void {
    if (this.batch.size >= FLUSH_KEYS) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), FLUSH_MS);
  }
}

/** The transaction's failure is reported once, by the checkpoint's write (the last of the transaction). */
function quiet(...writes: Array<Promise<unknown>>): void {
  for (const w of writes) w.catch(() => undefined);
}

function encodeFields(f: IndexFields): unknown[] {
  return [f.version, f.createdAt, f.group, f.processor, f.enabled ? 1 : 0];
}

function decodeFields(id: unknown, v: unknown): IndexFields {
  if (
    typeof id === 'string' &&
    Array.isArray(v) &&
    v.length === 5 &&
    v.slice(0, 4).every((x) => typeof x === 'string') &&
    (v[4] === 0 || v[4] === 1)
  ) {
    const [version, createdAt, group, processor, enabled] = v as [string, string, string, string, number];
    return { version, createdAt, group, processor, enabled: enabled === 1 };
  }
  throw new StoreUnreadableError(`index entry ${JSON.stringify(id)} does not decode`);
}

function decodeCheckpoint(v: unknown): Checkpoint | undefined {
  if (v === undefined) return undefined;
  const c = v as Partial<StoredCheckpoint>;
  if (c.format !== FORMAT)
    throw new StoreUnreadableError(`it is of format ${String(c.format)}, not ${FORMAT}`);
  if (
    typeof c.clusterId !== 'string' ||
    typeof c.topic !== 'string' ||
    typeof c.partitions !== 'number' ||
    typeof c.savedAt !== 'number' ||
    !Array.isArray(c.offsets) ||
    !c.offsets.every(
      (o) => Array.isArray(o) && typeof o[0] === 'number' && typeof o[1] === 'string' && /^\d+$/.test(o[1]),
    )
  )
    throw new StoreUnreadableError('its checkpoint does not decode');
  return {
    clusterId: c.clusterId,
    topic: c.topic,
    partitions: c.partitions,
    offsets: new Map(c.offsets),
    savedAt: c.savedAt,
  };
}

/** LMDB's meta pages: its magic number, at this offset of each of the first two pages. */
const MAGIC = 0xbeefc0de;
const MAGIC_AT = 0x18;
/** Where the first meta page keeps the page size (the free list's `md_pad`). */
const PAGE_SIZE_AT = 0x30;

/** What identifies the file as a clean close left it: inode, size and modification time. */
function identityOf(path: string): string {
  const st = statSync(path, { bigint: true });
  return JSON.stringify([String(st.ino), String(st.size), String(st.mtimeNs)]);
}

/**
 * Whether the store was closed cleanly and its file is as that close left it; the mark is removed either way (from
 * now on the file is open, and a process that dies leaves no mark).
 */
function takeCleanMark(dir: string, path: string): boolean {
  const mark = join(dir, CLEAN_FILE);
  let text: string;
  try {
    text = readFileSync(mark, 'utf8');
  } catch {
    return false;
  }
  rmSync(mark, { force: true });
  try {
    return text === identityOf(path);
  } catch {
    return false;
  }
}

/**
 * LMDB trusts its file: a damaged one can crash the process that opens it (no checksums). So before opening it here:
 * its two meta pages must carry LMDB's magic, and, unless it was closed cleanly and has not changed since
 * (`probe` false), a separate process must read every entry of it without failing (2.6 s for a million tasks).
 */
function checkFile(path: string, probe: boolean): void {
  const head = Buffer.alloc(64 * 1024);
  const fd = openSync(path, 'r');
  let n: number;
  try {
    n = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  const pageSize = n >= PAGE_SIZE_AT + 4 ? head.readUInt32LE(PAGE_SIZE_AT) : 0;
  const sound =
    pageSize >= 512 &&
    pageSize <= 32 * 1024 &&
    (pageSize & (pageSize - 1)) === 0 &&
    n >= pageSize + MAGIC_AT + 4 &&
    head.readUInt32LE(MAGIC_AT) === MAGIC &&
    head.readUInt32LE(pageSize + MAGIC_AT) === MAGIC;
  if (!sound) throw new StoreUnreadableError('it is not an LMDB file (its meta pages are damaged)');
  if (probe) readAllInChild(path);
}

/** Reads every entry of the store in a child process: a damaged page crashes the child, not taskapi. */
function readAllInChild(path: string): void {
  const script = `
    const { open } = require(process.argv[1]);
    const root = open({ path: process.argv[2], maxDbs: 8, readOnly: true });
    const names = [...root.getKeys({})].filter((k) => typeof k === 'string' && k !== 'checkpoint');
    for (const name of names)
      for (const e of root.openDB({ name, encoding: 'binary' }).getRange({})) void e.value;`;
  const r = spawnSync(
    process.execPath,
    ['-e', script, createRequire(import.meta.url).resolve('lmdb'), path],
    { encoding: 'utf8', timeout: 120_000 },
  );
  if (r.status === 0) return;
  const why = r.signal
    ? `reading it crashed a probe process (${r.signal})`
    : `reading it failed: ${r.stderr.trim().split('\n').at(-1) ?? `exit ${r.status}`}`;
  throw new StoreUnreadableError(`${why}; the file is damaged`);
}
