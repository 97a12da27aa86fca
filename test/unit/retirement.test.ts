import { describe, expect, it } from 'vitest';
import { RunHistory } from '../../src/api/run-history.js';
import { Retirement, RETIREMENT_ACTOR, retiredRunHeader } from '../../src/api/retirement.js';
import type { RetiredRun } from '../../src/api/retirement.js';
import { statusEvent } from '../../src/shared/codecs/task-event.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { TaskDefinition, TaskSchedule } from '../../src/shared/tasks/definition.js';
import { ACTOR_HEADER } from '../../src/shared/tasks/task-log.js';
import { FakeClock } from './helpers/fake-clock.js';

const T0 = Date.parse('2026-12-07T10:00:00.000Z');
const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

function def(id: string, schedule: TaskSchedule, extra: Partial<TaskDefinition> = {}): TaskDefinition {
  return {
    v: 1,
    id,
    name: id,
    processor: 'p',
    topic: 'taskTopic',
    schedule,
    timeZone: 'UTC',
    misfire: 'fire-once',
    enabled: true,
    group: 'g',
    createdAt: iso(T0 - HOUR),
    updatedAt: iso(T0 - HOUR),
    ...extra,
  };
}

/** taskapi's view as retirement sees it: definitions with versions, runs from events, and the conditional delete. */
function world(keepFinishedMs = HOUR) {
  const clock = new FakeClock(T0);
  const tasks = new Map<string, { def: TaskDefinition; version: string }>();
  const runs = new RunHistory();
  const retired: Array<{ id: string; run: RetiredRun }> = [];
  let version = 0;
  const retirement = new Retirement({
    clock,
    logger: silentLogger,
    keepFinishedMs,
    current: (id) => tasks.get(id),
    ids: () => tasks.keys(),
    latestRun: (id) => runs.latest(id),
    retire: (id, base, run) => {
      if (tasks.get(id)?.version !== base) return Promise.reject(new Error(`task ${id} changed meanwhile`));
      tasks.delete(id);
      retired.push({ id, run });
      return Promise.resolve();
    },
  });
  const put = (d: TaskDefinition) => tasks.set(d.id, { def: d, version: String(++version) });
  const event = (taskId: string, status: StatusEvent['status'], extra: Partial<StatusEvent> = {}) => {
    const e = statusEvent(
      { taskId, scheduleId: taskId.slice(0, taskId.lastIndexOf('@')) },
      status,
      iso(clock.now()),
      1,
      { host: 'h', pid: 1, role: 'consumer' },
      extra,
    );
    runs.fold(e);
    retirement.onEvent(e);
  };
  const advance = async (ms: number) => {
    for (let t = 0; t < ms; t += 1000) {
      clock.advance(Math.min(1000, ms - t));
      await Promise.resolve();
      await Promise.resolve();
    }
  };
  return { clock, tasks, retirement, retired, put, event, advance };
}

describe('Retirement of one-shot tasks', () => {
  it('should remove a one-shot task keepFinished after its run FINISHED, not before', async () => {
    const w = world();
    w.put(def('once', { runAt: iso(T0) }));
    w.retirement.start();
    w.event(`once@${iso(T0)}`, 'FINISHED');
    await w.advance(HOUR - 2000);
    expect(w.retired).toEqual([]);
    await w.advance(3000);
    expect(w.retired).toEqual([
      { id: 'once', run: { taskId: `once@${iso(T0)}`, state: 'FINISHED', endedAt: iso(T0) } },
    ]);
    expect(w.retirement.count).toBe(1);
  });

  it("should take a task's own keepFinished over the default, and retire a run that went to the DLQ for good", async () => {
    const w = world();
    w.put(def('short', { runAt: iso(T0) }, { keepFinished: '10s' }));
    w.put(def('dead', { runAt: iso(T0) }, { keepFinished: '20s' }));
    w.retirement.start();
    w.event(`short@${iso(T0)}`, 'FINISHED');
    w.event(`dead@${iso(T0)}`, 'FAILED', { final: false });
    await w.advance(15_000);
    expect(w.retired.map((r) => r.id)).toEqual(['short']);
    w.event(`dead@${iso(T0)}`, 'FAILED', { final: true, dlqReason: 'attempts-exhausted' });
    await w.advance(21_000);
    expect(w.retired.map((r) => `${r.id} ${r.run.state}`)).toEqual(['short FINISHED', 'dead FAILED']);
  });

  it('should never retire a recurring task', async () => {
    const w = world(1000);
    w.put(def('cron', { cron: '* * * * *' }));
    w.put(def('every', { every: '5s' }));
    w.retirement.start();
    w.event(`cron@${iso(T0)}`, 'FINISHED');
    w.event(`every@${iso(T0)}`, 'FINISHED');
    await w.advance(10_000);
    expect(w.retired).toEqual([]);
  });

  it('should not retire a task changed to a later instant meanwhile, nor after a manual run before its instant', async () => {
    const w = world(5000);
    w.put(def('moved', { runAt: iso(T0) }));
    w.put(def('early', { runAt: iso(T0 + HOUR) }));
    w.retirement.start();
    w.event(`moved@${iso(T0)}`, 'FINISHED');
    w.put(def('moved', { runAt: iso(T0 + HOUR) }));
    w.event(`early@${iso(T0 + 123)}`, 'FINISHED');
    await w.advance(10_000);
    expect(w.retired).toEqual([]);
  });

  it('should wait for a run replayed from the DLQ to end again', async () => {
    const w = world(5000);
    w.put(def('r', { runAt: iso(T0) }));
    w.retirement.start();
    w.event(`r@${iso(T0)}`, 'FAILED', { final: true });
    await w.advance(2000);
    w.event(`r@${iso(T0)}`, 'REPLAYED');
    await w.advance(5000);
    expect(w.retired).toEqual([]);
    w.event(`r@${iso(T0)}`, 'FINISHED');
    await w.advance(6000);
    expect(w.retired.map((r) => r.id)).toEqual(['r']);
  });

  it('should list at start the one-shots whose run ended before (events read before their tasks)', async () => {
    const w = world(5000);
    w.put(def('before', { runAt: iso(T0 - 3000) }));
    // Read at start, before `start`: only the run history keeps it.
    w.event(`before@${iso(T0 - 3000)}`, 'FINISHED');
    w.retirement.start();
    expect(w.retirement.pending).toBe(1);
    await w.advance(6000);
    expect(w.retired.map((r) => r.id)).toEqual(['before']);
  });

  it('should remember a retired task from its delete record, and forget it when the id is created again', () => {
    const w = world();
    const run: RetiredRun = { taskId: `x@${iso(T0)}`, state: 'FINISHED', endedAt: iso(T0) };
    const record = (value: Buffer | null, headers: Record<string, string>) => ({
      topic: 'taskmanager.tasks',
      partition: 0,
      offset: '7',
      key: Buffer.from('x'),
      value,
      headers,
      timestamp: String(T0 + HOUR),
    });
    w.retirement.onTaskRecord(record(null, { [ACTOR_HEADER]: RETIREMENT_ACTOR, ...retiredRunHeader(run) }), {
      kind: 'delete',
      version: '7',
    });
    expect(w.retirement.retiredTask('x')).toEqual({ id: 'x', retiredAt: iso(T0 + HOUR), run });
    w.retirement.onTaskRecord(record(Buffer.from('{}'), {}), { kind: 'put', version: '8' });
    expect(w.retirement.retiredTask('x')).toBeUndefined();
    // A delete by a user is no retirement.
    w.retirement.onTaskRecord(record(null, { [ACTOR_HEADER]: 'alice' }), { kind: 'delete', version: '9' });
    expect(w.retirement.retiredTask('x')).toBeUndefined();
  });
});
