import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../shared/logger.js';
import type { FollowOptions, TopicLayout } from '../shared/kafka/index.js';
import { DEFAULT_DELETE_RETENTION_MS, TASKS_TOPIC } from '../shared/tasks/definition.js';
import { DiskTaskDefs, STORE_FILE, StoreUnreadableError } from './disk-task-defs.js';
import type { Checkpoint } from './task-defs.js';

/** The store of one `taskapi` over one cluster: `<data dir>/<cluster id>/tasks/`. */
export function storeDirOf(dataDir: string, clusterId: string): string {
  return join(dataDir, clusterId.replace(/[^A-Za-z0-9_-]/g, '_'), 'tasks');
}

/** An opened store and where its view of the topic goes on from. */
export interface OpenedStore {
  defs: DiskTaskDefs;
  from: FollowOptions;
  /** How it was opened, for the start-up line: `from its checkpoint` or why it is rebuilt. */
  how: string;
  /** Releases the folder (and removes a private one); after `defs.close()`. */
  release(): void;
}

/**
 * Opens taskapi's store of `taskmanager.tasks` under `dataDir`, or rebuilds it (empty, read from the topic's start)
 * when it is missing, unreadable or does not match the topic any more, saying why in one line. A folder another
 * live taskapi holds is left alone: this one gets a private store, removed at exit.
 */
export async function openTaskStore(
  dataDir: string,
  layout: TopicLayout,
  logger: Logger,
  now: number,
): Promise<OpenedStore> {
  const shared = storeDirOf(dataDir, layout.clusterId);
  let dir = shared;
  let lock = lockDir(dir);
  if ('heldBy' in lock) {
    dir = `${shared}-pid${process.pid}`;
    removeDeadPrivateStores(shared);
    rmSync(dir, { recursive: true, force: true });
    logger.warn(
      `task store ${shared} is in use by another taskapi (pid ${lock.heldBy}); this one keeps a private store in ${dir}, built from ${TASKS_TOPIC} and removed at exit (give each taskapi its own --data-dir)`,
    );
    lock = lockDir(dir);
    if ('heldBy' in lock) throw new Error(`${dir} is in use by pid ${lock.heldBy}`);
  }
  const privateDir = dir !== shared;
  const release = (): void => {
    if (privateDir) rmSync(dir, { recursive: true, force: true });
    else lock.release();
  };
  const { defs, how } = await openOrRebuild(dir, layout, logger, now).catch((err: unknown) => {
    release();
    throw err;
  });
  defs.madeFrom({ clusterId: layout.clusterId, topic: TASKS_TOPIC, partitions: layout.partitions.size });
  const from: FollowOptions = defs.checkpoint
    ? { fromBeginning: true, fromOffsets: defs.checkpoint.offsets }
    : { fromBeginning: true };
  return { defs, from, how, release };
}

async function openOrRebuild(
  dir: string,
  layout: TopicLayout,
  logger: Logger,
  now: number,
): Promise<{ defs: DiskTaskDefs; how: string }> {
  const path = join(dir, STORE_FILE);
  const rebuild = async (why: string): Promise<{ defs: DiskTaskDefs; how: string }> => {
    logger.warn(`task store ${path} ${why}: rebuilding it from ${TASKS_TOPIC}`);
    DiskTaskDefs.wipe(dir);
    return { defs: await DiskTaskDefs.open(dir, logger), how: `rebuilt: ${why}` };
  };
  let defs: DiskTaskDefs;
  try {
    defs = await DiskTaskDefs.open(dir, logger);
  } catch (err) {
    if (!(err instanceof StoreUnreadableError)) throw err;
    return rebuild(`is unreadable (${err.message})`);
  }
  if (!defs.checkpoint) {
    logger.info(`no task store at ${path} (new, or deleted): building it from ${TASKS_TOPIC}`);
    return { defs, how: 'built from the start of the topic (new store)' };
  }
  const stale = staleReason(defs.checkpoint, layout, now);
  if (stale === undefined)
    return {
      defs,
      how: `from the checkpoint of ${path} (${defs.probed ? 'read whole by a probe process first: it was not closed cleanly' : 'closed cleanly'})`,
    };
  await defs.close();
  return rebuild(stale);
}

/** Why a checkpoint cannot be followed on from on this topic (undefined: it can). */
export function staleReason(ck: Checkpoint, layout: TopicLayout, now: number): string | undefined {
  if (ck.clusterId !== layout.clusterId)
    return `was made from cluster ${ck.clusterId}, not ${layout.clusterId}`;
  if (ck.topic !== TASKS_TOPIC) return `was made from topic ${ck.topic}, not ${TASKS_TOPIC}`;
  if (ck.partitions !== layout.partitions.size)
    return `was made when ${TASKS_TOPIC} had ${ck.partitions} partition(s), it has ${layout.partitions.size} now (re-created?)`;
  for (const [p, next] of ck.offsets) {
    const part = layout.partitions.get(p);
    if (!part) return `has a checkpoint of partition ${p}, which ${TASKS_TOPIC} does not have`;
    if (BigInt(next) > part.high)
      return `has its checkpoint ${TASKS_TOPIC}/${p}@${next} ahead of the topic's end ${part.high} (the topic was re-created?)`;
    if (BigInt(next) < part.low)
      return `has its checkpoint ${TASKS_TOPIC}/${p}@${next} before the topic's first offset ${part.low} (records it never read were deleted)`;
  }
  const age = now - ck.savedAt;
  const retention = layout.deleteRetentionMs ?? DEFAULT_DELETE_RETENTION_MS;
  if (age > retention)
    return `has a checkpoint ${Math.round(age / 60_000)} min old, older than ${TASKS_TOPIC}'s delete.retention.ms (${retention} ms${layout.deleteRetentionMs === undefined ? ", Kafka's default: DescribeConfigs on the topic is not allowed" : ''}): deletions since may be compacted away`;
  return undefined;
}

const LOCK_FILE = 'taskapi.pid';

/**
 * Takes the folder for this process: a `taskapi.pid` file naming its pid and host. One left by a process of this host
 * that died is taken over; one of another host (a container sharing the volume) is respected, as its process cannot
 * be checked from here.
 */
function lockDir(dir: string): { release(): void } | { heldBy: string } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, LOCK_FILE);
  const me = `${process.pid} ${hostname()}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      writeFileSync(file, me, { flag: 'wx', mode: 0o600 });
      return { release: () => rmSync(file, { force: true }) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pid = '', host = ''] = readFileSync(file, 'utf8').trim().split(' ');
      if (host !== hostname()) return { heldBy: `${pid} on host ${host}; if it is gone, delete ${file}` };
      if (Number(pid) !== process.pid && isAlive(Number(pid))) return { heldBy: pid };
      rmSync(file, { force: true });
    }
  }
  return { heldBy: readFileSync(file, 'utf8').trim() };
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Private stores of instances that died without removing theirs. */
function removeDeadPrivateStores(shared: string): void {
  const parent = join(shared, '..');
  const prefix = `${shared.slice(parent.length + 1)}-pid`;
  for (const name of readdirSync(parent))
    if (name.startsWith(prefix) && !isAlive(Number(name.slice(prefix.length))))
      rmSync(join(parent, name), { recursive: true, force: true });
}
