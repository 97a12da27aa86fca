import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  brokers,
  createTopics,
  deleteTopics,
  TopicReader,
  uniqueName,
} from '../integration/helpers/kafka.js';
import { startApi } from '../integration/helpers/api.js';
import { health, opsUrl, scrape, total } from '../integration/helpers/metrics.js';
import { killAll, ROOT, startCli } from '../integration/helpers/processes.js';
import { countBy, EVENTS, eventsOf } from '../integration/helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const kafkaLocal = (cmd: string): void => {
  execFileSync('bash', [join(ROOT, 'scripts/kafka-local'), cmd], { cwd: ROOT, stdio: 'inherit' });
};

describe.runIf(inject('localBroker'))(
  'when the broker is stopped while fires come due, and restarted during a run',
  () => {
    const topic = uniqueName('tasks');
    const prefix = `${uniqueName('b')}-`;
    let reader: TopicReader | undefined;

    afterEach(async () => {
      // Whatever happened in the test, the next test files need the broker back.
      const status = spawnSync('bash', [join(ROOT, 'scripts/kafka-local'), 'status'], { cwd: ROOT }).status;
      if (status !== 0) kafkaLocal('start');
      await killAll();
      await reader?.stop();
      await deleteTopics([topic]);
    });

    it('should lose no fire and no task, and resume by itself within seconds', async () => {
      await createTopics([topic]);
      reader = await new TopicReader([topic, EVENTS]).start();
      const entries = JSON.parse(await readFile(join(ROOT, 'config/taskscheduler.json'), 'utf8')) as Array<{
        Id: string;
        Topic: string;
      }>;
      for (const e of entries) Object.assign(e, { Id: `${prefix}${e.Id}`, Topic: topic });
      const file = join(await mkdtemp(join(tmpdir(), 'tm-')), 'restart.json');
      await writeFile(file, JSON.stringify(entries));
      const group = uniqueName('group');
      const scheduler = startCli('taskscheduler', ['-b', brokers(), '-s', file, '--metrics-port', '0']);
      const consumers = [1, 2].map(() =>
        startCli('taskconsumer', ['-b', brokers(), '-t', topic, '-g', group, '--metrics-port', '0']),
      );
      const finished = () => countBy(eventsOf(reader as TopicReader, prefix), 'FINISHED');
      /** The error of a wait for tasks to finish, with where those tasks are and what every program logged. */
      const stuck = (err: Error, open: string[]): Error => {
        const where = (id: string) => {
          const r = reader?.records.find((x) => x.topic === topic && x.headers['task-id'] === id);
          const evs = eventsOf(reader as TopicReader, id).map((e) => `${e.status}@${e.by.pid}/${e.at}`);
          return `${id} ${r ? `${r.partition}@${r.offset}` : '?'} [${evs.join(' ')}]`;
        };
        const lastEvent = reader?.records.filter((r) => r.topic === EVENTS).at(-1);
        const logs = [scheduler, ...consumers].map((c) =>
          c.output
            .split('\n')
            .filter((l) => /WARN|ERROR|join|restart|rebalanc|assign|crash|ready/i.test(l))
            .slice(-40)
            .map((l) => `[${c.name} ${c.pid}] ${l.slice(0, 300)}`)
            .join('\n'),
        );
        return new Error(
          `${err.message}: ${open.length} tasks not FINISHED, e.g.\n${open.slice(0, 10).map(where).join('\n')}\n` +
            `the test's reader: ${reader?.records.length} records, last event ${lastEvent?.value?.slice(0, 200)}\n` +
            `logs:\n${logs.join('\n')}`,
        );
      };
      await waitFor(() => finished().size >= 8, { timeoutMs: 30_000, what: 'tasks flowing' });
      const api = await startApi([]);
      const ops = await Promise.all([scheduler, ...consumers].map(opsUrl));
      const readiness = async () => [
        ...(await Promise.all(ops.map(async (u) => (await health(u, '/readyz')).status))),
        (await api.call('GET', '/api/readyz')).status,
      ];
      await waitFor(async () => (await readiness()).every((s) => s === 200), {
        timeoutMs: 30_000,
        what: 'all ready',
      });

      kafkaLocal('stop');
      const stoppedAt = Date.now();
      // Readiness goes false while the broker is away (the health of each process stays true).
      await waitFor(async () => (await readiness()).every((s) => s === 503), {
        timeoutMs: 10_000,
        what: 'every process not ready while the broker is down',
      });
      const why = (await health(ops[1] ?? '', '/readyz')).body.reason;
      expect(why).toMatch(/coordinator|not in consumer group/);
      // taskapi refuses writes with a clear reason, and writes nothing.
      const lostId = uniqueName('never-written');
      const refused = await api.call<{ detail: string }>('POST', '/api/v1/tasks', {
        id: lostId,
        processor: 'NoopProcessor',
        schedule: { every: '5s' },
      });
      expect([refused.status, refused.body.detail]).toEqual([
        503,
        expect.stringMatching(/Kafka unreachable.*nothing was written/),
      ]);
      // The public readiness says not ready, never why: the brokers and Kafka's error go to taskapi's log.
      const readyz = await api.call<{ detail: string }>('GET', '/api/readyz');
      expect(readyz.body.detail).toMatch(/^not ready/);
      for (const broker of brokers().split(',')) expect(readyz.text).not.toContain(broker);
      await api.cli.waitForOutput(/\/api\/readyz answers 503: Kafka unreachable/);
      for (const u of ops) expect((await health(u, '/healthz')).status).toBe(200);
      // The outage lasts until the scheduler has failed to publish more than once and holds a backlog of more than
      // 30 fires besides the last two seconds' (at most one per entry a second): those are published after the
      // restart (seconds), more than 5 s after their instant, which is what `late` counts below. All along, every
      // process stays not ready and alive.
      const outageProblems: string[] = [];
      let backlog = { queued: 0, failures: 0 };
      await waitFor(
        async () => {
          const r = await readiness();
          if (r.some((x) => x !== 503)) outageProblems.push(r.join(','));
          for (const u of ops)
            if ((await health(u, '/healthz')).status !== 200) outageProblems.push(`${u} unhealthy`);
          const m = await scrape(ops[0] ?? '');
          backlog = {
            queued: total(m, 'taskmanager_scheduler_queued_fires'),
            failures: total(m, 'taskmanager_scheduler_publish_errors_total'),
          };
          return backlog.queued > 30 + 2 * entries.length && backlog.failures >= 2;
        },
        {
          timeoutMs: 30_000,
          intervalMs: 500,
          what: () => `a backlog of fires the scheduler failed to publish (now ${JSON.stringify(backlog)})`,
        },
      );
      console.log(
        `broker down ${((Date.now() - stoppedAt) / 1000).toFixed(1)} s: ${backlog.queued} fires queued, ` +
          `${backlog.failures} failed publishes`,
      );
      expect(outageProblems).toEqual([]);
      kafkaLocal('start');
      const backAt = Date.now();
      await waitFor(
        () =>
          eventsOf(reader as TopicReader, prefix).some(
            (e) => e.status === 'FINISHED' && Date.parse(e.at) > backAt,
          ),
        { timeoutMs: 60_000, what: 'tasks finishing after the restart' },
      ).catch((err: Error) => {
        const since = reader?.records.filter((r) => r.topic === topic).slice(-5) ?? [];
        throw stuck(
          err,
          since.map((r) => r.headers['task-id'] ?? '?'),
        );
      });
      let statuses: number[] = [];
      await waitFor(
        async () => {
          statuses = await readiness();
          return statuses.every((s) => s === 200);
        },
        { timeoutMs: 60_000, what: 'every process ready again after the restart' },
      ).catch(async (err: Error) => {
        const api503 = `${(await api.call('GET', '/api/readyz')).text}; scheduler: ${JSON.stringify((await health(ops[0] ?? '', '/readyz')).body)}`;
        const lines = scheduler.output
          .split('\n')
          .filter((l) => /crash|join|restart|rebalanc|leave|left|cannot publish|publishing again/i.test(l));
        throw new Error(
          `${err.message}: scheduler, consumers, taskapi = ${statuses.join(', ')}; taskapi: ${api503}\n` +
            `scheduler's membership and publishing log:\n${lines.slice(-40).join('\n')}`,
        );
      });
      expect((await api.call('GET', `/api/v1/tasks/${lostId}`)).status).toBe(404);
      const retried = await api.call('POST', '/api/v1/tasks', {
        id: lostId,
        processor: 'NoopProcessor',
        schedule: { every: '5s' },
        enabled: false,
      });
      // Stored either way. Known limit: kafkajs may rejoin taskapi's follower as a new member after the restart, and
      // its view then waits out the old member's session (kafkajs's 30 s) before reading again; meanwhile a write
      // answers 503 "written … but not read back" (honest: it is stored), and the task shows once the view reads.
      if (retried.status !== 201)
        expect(retried.text).toMatch(/was written to taskmanager\.tasks\/\d+@\d+ but not read back/);
      await waitFor(async () => (await api.call('GET', `/api/v1/tasks/${lostId}`)).status === 200, {
        timeoutMs: 45_000,
        what: 'the task written after the restart in the view',
      });
      const resumedAfterMs =
        Math.min(
          ...eventsOf(reader, prefix)
            .filter((e) => e.status === 'FINISHED' && Date.parse(e.at) > backAt)
            .map((e) => Date.parse(e.at)),
        ) - backAt;

      scheduler.signal('SIGTERM');
      expect((await scheduler.exited).code).toBe(0);
      await reader.caughtUp(topic);
      const tasks = reader.values<TaskMessage>(topic);
      const ids = new Set(tasks.map((t) => t.taskId));
      // Every (entry, second) from the first fire to the last one was published.
      const seconds = [...new Set(tasks.map((t) => Date.parse(t.scheduledFor)))].sort((a, b) => a - b);
      // Entries are armed as their state partitions are taken over at start-up, a few ms apart: an entry never
      // fired before starts from then. Check from the first second every entry had started.
      const first = Math.max(
        ...entries.map((e) =>
          Math.min(...tasks.filter((t) => t.scheduleId === e.Id).map((t) => Date.parse(t.scheduledFor))),
        ),
      );
      const last = seconds[seconds.length - 1] ?? 0;
      const missing: string[] = [];
      for (let t = first; t <= last; t += 1000) {
        for (const e of entries) {
          const id = `${e.Id}@${new Date(t).toISOString()}`;
          if (!ids.has(id)) missing.push(id);
        }
      }
      if (missing.length > 0) {
        console.log(`missing ${missing.join(' ')} (stopped ${new Date(stoppedAt).toISOString()}, back ${new Date(backAt).toISOString()})
${scheduler.output}`);
      }
      expect(missing).toEqual([]);
      await waitFor(() => [...ids].every((id) => finished().has(id)), {
        timeoutMs: 60_000,
        what: 'every task FINISHED',
      }).catch((err: Error) => {
        throw stuck(
          err,
          [...ids].filter((id) => !finished().has(id)),
        );
      });
      const late = tasks.filter((t) => Date.parse(t.firedAt) - Date.parse(t.scheduledFor) > 5000).length;
      const doubled = [...finished().values()].filter((n) => n > 1).length;
      console.log(
        `broker restart: ${ids.size} tasks over ${(last - first) / 1000 + 1} s, ${late} fired late during the outage, ` +
          `none missing; first task finished ${resumedAfterMs} ms after the broker was back; ${doubled} finished twice`,
      );
      expect(late).toBeGreaterThan(30);
      // When kafkajs restarts a consumer after a crash, the consumer leaves as its previous member and work resumes
      // in well under a second. kafkajs does not always crash, though: it may rejoin as a new member by itself, and
      // then the group waits out the old member's 6 s session (seen once in CI). Bounded by that, never more.
      expect(resumedAfterMs).toBeLessThan(7500);
      for (const c of consumers) expect(c.alive).toBe(true);
    });
  },
);
