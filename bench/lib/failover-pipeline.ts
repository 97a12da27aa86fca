/**
 * One run of a failover scenario: a fresh task topic, a schedule file of every-second entries (`fire-all`), the
 * real CLIs on it, a reader of what reached Kafka, and the accounting of lost and doubled tasks afterwards.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Kafka } from 'kafkajs';
import { partitionForKey } from '../../src/shared/kafka/index.js';
import { EVENTS_TOPIC } from '../../src/shared/codecs/task-event.js';
import { taskIdFor } from '../../src/shared/codecs/task-message.js';
import type { RawScheduleEntry } from '../../src/shared/config/schema.js';
import { createTaskTopics, deleteGroups, deleteTopics } from '../../test/kit/kafka.js';
import { exitWithin, startCli } from '../../test/kit/processes.js';
import type { Cli, CliName, Exit } from '../../test/kit/processes.js';
import { TopicReader } from '../../test/kit/topic-reader.js';
import type { Received } from '../../test/kit/topic-reader.js';
import { poll, sleep } from '../../test/kit/wait.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

export const PARTITIONS = 12;

/** Where a scenario runs: the broker, where logs go, and the CLIs' log level. */
export interface Rig {
  kafka: Kafka;
  brokers: string[];
  logDir: string;
  logLevel: string;
}

export const second = (ms: number): number => Math.floor(ms / 1000) * 1000;
const hex = (): string => randomBytes(4).toString('hex');

/** Waits until the wall clock is `phaseMs` past a whole second (the scenario's own timing, not a settle sleep). */
export function untilPhase(phaseMs: number): Promise<void> {
  return sleep((phaseMs - (Date.now() % 1000) + 1000) % 1000);
}

/** `perPartition` schedule ids for each of the topic's partitions (keys are hashed as the producer does). */
export function balancedIds(prefix: string, perPartition: number): string[] {
  const count = new Array<number>(PARTITIONS).fill(0);
  const ids: string[] = [];
  for (let k = 0; ids.length < PARTITIONS * perPartition; k++) {
    const id = `${prefix}-${k}`;
    const p = partitionForKey(id, PARTITIONS);
    if ((count[p] ?? 0) < perPartition) {
      count[p] = (count[p] ?? 0) + 1;
      ids.push(id);
    }
  }
  return ids;
}

export interface Accounting {
  /** (entry, second) pairs in the span from the first second every entry fired to the last one all fired. */
  expected: number;
  /** Expected pairs with no task message on the topic. */
  unpublished: string[];
  /** Task messages beyond the first of their taskId (the scheduler publishes exactly once). */
  publishedTwice: number;
  /** TaskIds on the topic with no FINISHED event (consumer scenarios). */
  unprocessed: string[];
  /** FINISHED events beyond the first of their taskId. */
  finishedTwice: number;
  /** Of those, the ones the scenario's guarantee allows (e.g. redelivery of a killed consumer's uncommitted work). */
  finishedTwiceAllowed: number;
}

/** A fresh topic, schedule and reader; the CLIs are started by the scenario. */
export class Run {
  readonly topic: string;
  readonly prefix: string;
  readonly schedulerGroup = `failover-sched-${hex()}`;
  readonly consumerGroup = `failover-cons-${hex()}`;
  readonly scheduleFile: string;
  private readonly clis: Cli[] = [];
  private reader: TopicReader | undefined;

  private constructor(
    readonly rig: Rig,
    readonly label: string,
    readonly ids: string[],
    prefix: string,
  ) {
    this.prefix = prefix;
    this.topic = `failover-${label}-${hex()}`;
    this.scheduleFile = join(rig.logDir, `${label}-schedule.json`);
    const entries: RawScheduleEntry[] = ids.map((Id) => ({
      Id,
      Cron: '* * * * * *',
      Topic: this.topic,
      Misfire: 'fire-all',
      TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
    }));
    writeFileSync(this.scheduleFile, `${JSON.stringify(entries, null, 2)}\n`);
  }

  /** `ids(prefix)` makes the schedule ids; the prefix is random, so this run's tasks and events are told apart. */
  static async create(rig: Rig, label: string, ids: (prefix: string) => string[]): Promise<Run> {
    const prefix = `fo${hex()}`;
    const run = new Run(rig, label, ids(prefix), prefix);
    await createTaskTopics(rig.kafka, [run.topic], PARTITIONS, { fresh: true });
    // The shared events topic holds millions of other records: read from its end, this run's tasks only.
    const events = {
      topic: EVENTS_TOPIC,
      fromEnd: true,
      keep: (v: string) => v.includes(`"taskId":"${prefix}-`),
    };
    run.reader = await new TopicReader(() => rig.kafka, [run.topic, events], {
      groupPrefix: 'failover-reader',
      // It must outlive a broker restart in the broker scenario.
      consumer: {
        retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2000, restartOnFailure: async () => true },
      },
    }).start();
    return run;
  }

  private start(name: CliName, args: string[]): Cli {
    const n = this.clis.filter((c) => c.name === name).length + 1;
    const cli = startCli(name, args, { logFile: join(this.rig.logDir, `${this.label}-${name}-${n}.log`) });
    this.clis.push(cli);
    return cli;
  }

  scheduler(): Cli {
    const b = this.rig.brokers.join(',');
    const args = ['-b', b, '-s', this.scheduleFile, '--group', this.schedulerGroup, '-l', this.rig.logLevel];
    return this.start('taskscheduler', args);
  }

  consumer(): Cli {
    const b = this.rig.brokers.join(',');
    return this.start('taskconsumer', [
      '-b',
      b,
      '-t',
      this.topic,
      '-g',
      this.consumerGroup,
      '-l',
      this.rig.logLevel,
    ]);
  }

  private get read(): TopicReader {
    if (!this.reader) throw new Error('run not created');
    return this.reader;
  }

  tasks(): Array<Received<TaskMessage>> {
    return this.read.received<TaskMessage>(this.topic);
  }

  finished(): Array<Received<StatusEvent>> {
    return this.read.received<StatusEvent>(EVENTS_TOPIC).filter((e) => e.value.status === 'FINISHED');
  }

  /** FINISHED events by taskId. */
  finishedByTask(): Map<string, StatusEvent[]> {
    const m = new Map<string, StatusEvent[]>();
    for (const { value: e } of this.finished()) {
      let list = m.get(e.taskId);
      if (!list) m.set(e.taskId, (list = []));
      list.push(e);
    }
    return m;
  }

  /**
   * The consumer owning each partition in the last two full seconds, when every entry finished exactly once in
   * both, each partition by the same consumer, and each of `pids` owned some; else undefined.
   */
  settledOwners(pids: number[]): Map<number, number> | undefined {
    const fin = this.finishedByTask();
    const last = second(Date.now()) - 1000;
    const owners = new Map<number, number>();
    for (const t of [last - 1000, last]) {
      for (const id of this.ids) {
        const evs = fin.get(taskIdFor(id, t)) ?? [];
        const e = evs[0];
        if (evs.length !== 1 || !e?.source) return undefined;
        const prev = owners.get(e.source.partition);
        if (prev !== undefined && prev !== e.by.pid) return undefined;
        owners.set(e.source.partition, e.by.pid);
      }
    }
    const owning = new Set(owners.values());
    return pids.every((p) => owning.has(p)) ? owners : undefined;
  }

  /**
   * The scheduler that published each entry's task in the last two full seconds, when every entry was published
   * exactly once in both, by the same scheduler, and each of `pids` published some; else undefined.
   */
  settledFirers(pids: number[]): Map<string, number> | undefined {
    const last = second(Date.now() - 300) - 1000;
    const byTask = new Map<string, number[]>();
    for (const { value: t } of this.tasks()) {
      const at = Date.parse(t.scheduledFor);
      if (at !== last && at !== last - 1000) continue;
      let list = byTask.get(t.taskId);
      if (!list) byTask.set(t.taskId, (list = []));
      list.push(t.scheduler.pid);
    }
    const firers = new Map<string, number>();
    for (const t of [last - 1000, last]) {
      for (const id of this.ids) {
        const pids = byTask.get(taskIdFor(id, t)) ?? [];
        const pid = pids[0];
        if (pids.length !== 1 || pid === undefined) return undefined;
        if ((firers.get(id) ?? pid) !== pid) return undefined;
        firers.set(id, pid);
      }
    }
    const firing = new Set(firers.values());
    return pids.every((p) => firing.has(p)) ? firers : undefined;
  }

  /** True when every entry's task of the whole second `t` finished. */
  allFinishedAt(t: number): boolean {
    const fin = this.finishedByTask();
    return this.ids.every((id) => fin.has(taskIdFor(id, t)));
  }

  /** True when every entry's task of the whole second `t` is on the topic. */
  allPublishedAt(t: number): boolean {
    const ids = new Set(this.tasks().map((r) => r.value.taskId));
    return this.ids.every((id) => ids.has(taskIdFor(id, t)));
  }

  /** Waits until the reader has every record the task topic holds now. */
  caughtUp(): Promise<void> {
    return this.read.caughtUp(this.topic);
  }

  /**
   * Ends a consumer scenario in the order that loses nothing: the scheduler publishes what it queued and exits,
   * the reader catches up with the topic, the consumers finish every task on it (or the deadline passes), then
   * they drain and exit.
   */
  async finish(scheduler: Cli, consumers: Cli[]): Promise<{ schedulerExit: Exit; consumerExits: Exit[] }> {
    scheduler.signal('SIGTERM');
    const schedulerExit = await exitWithin(scheduler, 20_000);
    await this.read.caughtUp(this.topic);
    const ids = [...new Set(this.tasks().map((r) => r.value.taskId))];
    await poll(() => {
      const fin = this.finishedByTask();
      return ids.every((id) => fin.has(id)) ? true : undefined;
    }, 30_000);
    for (const c of consumers) c.signal('SIGTERM');
    const consumerExits = await Promise.all(consumers.map((c) => exitWithin(c, 30_000)));
    return { schedulerExit, consumerExits };
  }

  /**
   * Lost and doubled tasks over the whole run. `allowed(events)` says whether a taskId's several FINISHED events
   * are what the scenario's delivery guarantee allows.
   */
  account(options: { consumers: boolean; allowed?: (events: StatusEvent[]) => boolean }): Accounting {
    const tasks = this.tasks().map((r) => r.value);
    const count = new Map<string, number>();
    for (const t of tasks) count.set(t.taskId, (count.get(t.taskId) ?? 0) + 1);
    const publishedTwice = [...count.values()].reduce((n, c) => n + c - 1, 0);
    const firstOf = new Map<string, number>();
    const lastOf = new Map<string, number>();
    for (const t of tasks) {
      const at = Date.parse(t.scheduledFor);
      firstOf.set(t.scheduleId, Math.min(firstOf.get(t.scheduleId) ?? Infinity, at));
      lastOf.set(t.scheduleId, Math.max(lastOf.get(t.scheduleId) ?? -Infinity, at));
    }
    const from = Math.max(...this.ids.map((id) => firstOf.get(id) ?? Infinity));
    const to = Math.min(...this.ids.map((id) => lastOf.get(id) ?? -Infinity));
    const unpublished: string[] = [];
    let expected = 0;
    for (let t = from; t <= to; t += 1000) {
      for (const id of this.ids) {
        expected++;
        if (!count.has(taskIdFor(id, t))) unpublished.push(taskIdFor(id, t));
      }
    }
    if (!options.consumers) {
      return {
        expected,
        unpublished,
        publishedTwice,
        unprocessed: [],
        finishedTwice: 0,
        finishedTwiceAllowed: 0,
      };
    }
    const fin = this.finishedByTask();
    const unprocessed = [...count.keys()].filter((id) => !fin.has(id));
    let finishedTwice = 0;
    let finishedTwiceAllowed = 0;
    for (const evs of fin.values()) {
      if (evs.length < 2) continue;
      finishedTwice += evs.length - 1;
      if (options.allowed?.(evs)) finishedTwiceAllowed += evs.length - 1;
    }
    return { expected, unpublished, publishedTwice, unprocessed, finishedTwice, finishedTwiceAllowed };
  }

  /** What the CLIs logged at WARN or ERROR, one summary line per process that did. */
  logProblems(): string[] {
    const out: string[] = [];
    for (const c of this.clis) {
      const p = c.problems();
      if (p.length > 0)
        out.push(`${c.logFile?.split('/').pop() ?? c.name}: ${p.length} WARN/ERROR, first: ${p[0]}`);
    }
    return out;
  }

  /** Kills what still runs of this run's CLIs, stops the reader, deletes the topic and the consumer group. */
  async dispose(): Promise<void> {
    for (const c of this.clis) c.signal('SIGKILL');
    await Promise.all(this.clis.map((c) => c.exited));
    await this.reader?.stop();
    await deleteTopics(this.rig.kafka, [this.topic]);
    if (this.clis.some((c) => c.name === 'taskconsumer'))
      await deleteGroups(this.rig.kafka, [this.consumerGroup]);
  }
}
