import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders, Server } from 'node:http';
import { writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { groupScheduleFile, iso, useSchedulerGroup } from './helpers/scheduler-group.js';
import type { Entry } from './helpers/scheduler-group.js';
import { brokers, TopicReader, uniqueName } from './helpers/kafka.js';
import { startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { EVENTS } from './helpers/tasks.js';
import { startApi } from './helpers/api.js';
import { opsUrl, scrape, total } from './helpers/metrics.js';
import { waitFor } from '../kit/wait.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const SECRET = 'alert-hook-secret-value';

/** What the local webhook server received: the headers and the exact body bytes of each request. */
interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

describe('alerts, delivered through the webhook processor', () => {
  const sg = useSchedulerGroup();
  let events: TopicReader;
  let server: Server;
  let hook = '';
  const received: Received[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({ path: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    hook = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(async () => {
    events = await new TopicReader([{ topic: EVENTS, fromEnd: true }]).start();
  });
  afterEach(async () => {
    await events.stop();
  });

  /** A consumer of the test's topic that may reach the local server and resolves the HOOK secret (and `secrets`). */
  const consumer = (secrets: Record<string, string> = {}, ...flags: string[]): RunningCli =>
    startCli(
      'taskconsumer',
      [
        '-b',
        brokers(),
        '-t',
        sg.topic,
        '-g',
        uniqueName('g'),
        '--processors',
        'test/fixtures/test-processors.js',
        '--webhook-allow',
        '127.0.0.1',
        ...flags,
      ],
      {
        env: {
          TASKMANAGER_SECRET_HOOK: SECRET,
          ...Object.fromEntries(Object.entries(secrets).map(([k, v]) => [`TASKMANAGER_SECRET_${k}`, v])),
        },
      },
    );
  /**
   * A schedule file in the object form: one entry firing once, 2 s from now (or at `runAt`), and the file's default
   * Alerts.
   */
  const oneShot = async (
    id: string,
    template: object,
    alerts: object,
    own?: object,
    runAt = Math.ceil((Date.now() + 2000) / 1000) * 1000,
  ): Promise<string> => {
    const file = await groupScheduleFile([]);
    await writeFile(
      file,
      JSON.stringify({
        Alerts: alerts,
        Schedules: [
          {
            Id: id,
            RunAt: iso(runAt),
            Topic: sg.topic,
            TaskMessageTemplate: template,
            ...(own ? { Alerts: own } : {}),
          },
        ],
      }),
    );
    return file;
  };
  const eventsOf = (prefix: string): StatusEvent[] =>
    events.values<StatusEvent>(EVENTS, (e) => e.taskId.startsWith(prefix));
  const requestsTo = (path: string): Received[] => received.filter((r) => r.path === path);

  it('should deliver exactly one failed alert of a failing run, signed, and let an operator acknowledge it', async () => {
    const id = uniqueName('failing');
    const file = await oneShot(
      id,
      { TaskProcessorName: 'BadInputProcessor' },
      {
        channel: { webhook: { url: `${hook}/${id}`, secret: { $secret: 'HOOK' } } },
      },
    );
    consumer({}, '--max-attempts', '1');
    sg.scheduler(file);
    const delivered = (): StatusEvent[] =>
      eventsOf(`alert/${id}/failed@`).filter((e) => e.status === 'FINISHED');
    // The delivery's events and the run's are on other partitions of the events topic: wait for both.
    const runDone = () => eventsOf(`${id}@`).some((e) => e.status === 'ALERT');
    await waitFor(() => delivered().length > 0 && runDone(), {
      timeoutMs: 60_000,
      what: () =>
        `the failed alert delivered (events: ${eventsOf(id)
          .map((e) => e.status)
          .join(', ')})`,
    });
    const run = eventsOf(`${id}@`);
    const taskId = run[0]?.taskId ?? '';
    expect(run.filter((e) => e.status === 'FAILED' && e.final)).toHaveLength(1);
    expect(run.filter((e) => e.status === 'ALERT').map((e) => e.alert)).toEqual([
      { kind: 'failed', reason: 'non-retriable after 1 attempt(s): invoice has no customer' },
    ]);
    const [req, ...more] = requestsTo(`/${id}`);
    expect(more).toEqual([]);
    // The signature is the HMAC-SHA256 of the exact bytes received, keyed by the secret the consumer resolved.
    expect(req?.headers['x-taskmanager-signature']).toBe(
      `sha256=${createHmac('sha256', SECRET).update(req!.body).digest('hex')}`,
    );
    expect(req?.headers['idempotency-key']).toBe(`alert/${id}/failed@${taskId.slice(id.length + 1)}`);
    expect(JSON.parse(req!.body.toString('utf8'))).toEqual({
      kind: 'failed',
      scheduleId: id,
      taskId,
      reason: 'non-retriable after 1 attempt(s): invoice has no customer',
      at: expect.any(String),
      group: sg.group,
    });
    // The secret never reaches a record: the events of the delivery keep the reference.
    expect(JSON.stringify(eventsOf(`alert/${id}/`))).not.toContain(SECRET);

    const api = await startApi([]);
    type Alerts = {
      items: Array<{ id: string; kind: string; taskId: string; scheduleId: string; acknowledged?: unknown }>;
    };
    let alertId = '';
    await waitFor(
      async () => {
        const open = (await api.call<Alerts>('GET', '/api/v1/alerts')).body.items;
        alertId = open.find((a) => a.taskId === taskId)?.id ?? '';
        return alertId !== '';
      },
      { timeoutMs: 30_000, what: 'taskapi listing the open alert' },
    );
    const acked = await api.call<{ acknowledged?: { user: string } }>(
      'POST',
      `/api/v1/alerts/${alertId}/ack`,
    );
    expect(acked.status, acked.text).toBe(200);
    expect(acked.body.acknowledged?.user).toBe('test-admin');
    const open = async (a: typeof api) =>
      (await a.call<Alerts>('GET', '/api/v1/alerts')).body.items.filter((x) => x.taskId === taskId);
    expect(await open(api)).toEqual([]);
    await waitFor(
      async () =>
        (
          await api.call<{ items: Array<{ alert?: string; user: string }> }>(
            'GET',
            '/api/v1/audit?action=alert.acknowledged',
          )
        ).body.items.some((e) => e.alert === alertId && e.user === 'test-admin'),
      { timeoutMs: 30_000, what: 'the acknowledgement in the audit trail' },
    );
    // Another taskapi, started after it, reads the acknowledgement back: the alert stays closed.
    const again = await startApi([]);
    await waitFor(
      async () =>
        (await again.call<Alerts>('GET', '/api/v1/alerts?all=true')).body.items.some(
          (x) => x.taskId === taskId && x.acknowledged !== undefined,
        ),
      { timeoutMs: 30_000, what: 'a new taskapi knowing the alert acknowledged' },
    );
    expect(await open(again)).toEqual([]);
  });

  it('should raise one overrun alert of a task still running past overrunSeconds', async () => {
    const id = uniqueName('slow');
    const file = await oneShot(
      id,
      { TaskProcessorName: 'SleepProcessor', Payload: { ms: 5000 } },
      // The file's default asks for failed alerts only; the entry's own replaces it.
      { channel: { webhook: { url: `${hook}/default` } } },
      // A Slack webhook's URL is its credential: a secret reference, resolved by the consumer.
      { channel: { webhook: { url: { $secret: 'SLACK_URL' }, slack: true } }, overrunSeconds: 1 },
    );
    consumer({ SLACK_URL: `${hook}/${id}` });
    sg.scheduler(file);
    await waitFor(
      () =>
        eventsOf(`${id}@`).some((e) => e.status === 'FINISHED') &&
        eventsOf(`alert/${id}/overrun@`).some((e) => e.status === 'FINISHED'),
      {
        timeoutMs: 60_000,
        what: () =>
          `the run and its overrun alert finished (events: ${eventsOf(id)
            .map((e) => e.status)
            .join(', ')})`,
      },
    );
    const run = eventsOf(`${id}@`);
    const alerts = run.filter((e) => e.status === 'ALERT');
    expect(alerts.map((e) => e.alert?.kind)).toEqual(['overrun']);
    expect(alerts[0]?.alert?.reason).toMatch(/^attempt 1 still running 1 s after it started/);
    // Raised while the run went on: before its FINISHED event.
    const finished = run.find((e) => e.status === 'FINISHED');
    expect(Date.parse(alerts[0]!.at)).toBeLessThan(Date.parse(finished!.at));
    const [req, ...more] = requestsTo(`/${id}`);
    expect(more).toEqual([]);
    expect(JSON.parse(req!.body.toString('utf8'))).toEqual({
      text: expect.stringMatching(new RegExp(`^taskmanager alert: overrun of ${id} \\(${id}@`)),
    });
    expect(req?.headers['x-taskmanager-signature']).toBeUndefined();
    expect(requestsTo('/default')).toEqual([]);
  });

  it('should raise one late alert, from the scheduler, for a fire published past lateSeconds', async () => {
    const id = uniqueName('late');
    // A one-shot whose instant passed before any scheduler ran: it fires at once, 10 s after it was due.
    const due = Math.floor((Date.now() - 10_000) / 1000) * 1000;
    const file = await oneShot(
      id,
      { TaskProcessorName: 'NoopProcessor' },
      { channel: { webhook: { url: `${hook}/${id}`, secret: { $secret: 'HOOK' } } }, lateSeconds: 5 },
      undefined,
      due,
    );
    consumer();
    sg.scheduler(file);
    // The delivery's events and the run's ALERT are on different partitions of the events topic: wait for both.
    const raised = (): boolean => eventsOf(`${id}@`).some((e) => e.status === 'ALERT');
    await waitFor(() => eventsOf(`alert/${id}/late@`).some((e) => e.status === 'FINISHED') && raised(), {
      timeoutMs: 60_000,
      what: () =>
        `the late alert delivered (events: ${eventsOf(id)
          .map((e) => e.status)
          .join(', ')})`,
    });
    const alerts = eventsOf(`${id}@`).filter((e) => e.status === 'ALERT');
    expect(alerts.map((e) => [e.taskId, e.alert?.kind, e.by.role])).toEqual([
      [`${id}@${iso(due)}`, 'late', 'scheduler'],
    ]);
    expect(alerts[0]?.alert?.reason).toMatch(/^fired \d+\.\d s after it was due \(lateSeconds 5\)$/);
    const [req, ...more] = requestsTo(`/${id}`);
    expect(more).toEqual([]);
    expect(req?.headers['x-taskmanager-signature']).toBe(
      `sha256=${createHmac('sha256', SECRET).update(req!.body).digest('hex')}`,
    );
    expect(JSON.parse(req!.body.toString('utf8'))).toMatchObject({
      kind: 'late',
      scheduleId: id,
      group: sg.group,
    });
  });

  it('should raise one missed alert for the instants dropped while no scheduler ran, past the window too, with two survivors racing', async () => {
    const id = uniqueName('missed');
    const windowSeconds = 2;
    const file = await groupScheduleFile([
      {
        Id: id,
        Cron: '* * * * * *',
        Topic: sg.topic,
        Misfire: 'skip',
        MisfireWindowSeconds: windowSeconds,
        TaskMessageTemplate: { TaskProcessorName: 'NoopProcessor' },
        Alerts: { channel: { webhook: { url: `${hook}/${id}` } }, failed: false, skipped: true },
      } as Entry,
    ]);
    consumer();
    const first = sg.scheduler(file);
    const fired = () => sg.tasks().filter((t) => t.scheduleId === id);
    await waitFor(() => fired().length >= 2, { timeoutMs: 30_000, what: 'the first fires' });
    // Killed: the instants until the next instance takes the entry over are missed; those older than the misfire
    // window when it does are dropped whatever the policy, and skip drops the others.
    first.signal('SIGKILL');
    await first.exited;
    const killedAt = Date.now();
    // Down past the window: until the first instant after the kill is older than it.
    await waitFor(() => Date.now() > killedAt + (windowSeconds + 2) * 1000, {
      timeoutMs: (windowSeconds + 10) * 1000,
      what: 'the window passed',
    });
    // Two survivors start at once and race for the entry's state partition.
    sg.scheduler(file);
    sg.scheduler(file);
    const raised = (): boolean => eventsOf(`${id}@`).some((e) => e.status === 'ALERT');
    await waitFor(() => eventsOf(`alert/${id}/missed@`).some((e) => e.status === 'FINISHED') && raised(), {
      timeoutMs: 60_000,
      what: () =>
        `the missed alert delivered (alerts: ${JSON.stringify(eventsOf(id).filter((e) => e.status === 'ALERT'))})`,
    });
    // Both survivors own their partitions and the entry fires again, after the alert went out with its first fire.
    await waitFor(() => fired().some((t) => Date.parse(t.scheduledFor) > Date.now() - 1000), {
      timeoutMs: 30_000,
      what: 'fires again',
    });
    const alerts = events.values<StatusEvent>(EVENTS, (e) => e.status === 'ALERT' && e.scheduleId === id);
    expect(alerts.map((e) => [e.alert?.kind, e.by.role])).toEqual([['missed', 'scheduler']]);
    const m = new RegExp(
      '^(\\d+) instant\\(s\\) from (\\S+) to (\\S+) not fired: no scheduler owned the entry then; (\\d+) older than ' +
        `MisfireWindowSeconds \\(${windowSeconds}\\) when a scheduler could fire them, and of the others Misfire skip drops them$`,
    ).exec(alerts[0]?.alert?.reason ?? '');
    expect(m, alerts[0]?.alert?.reason).not.toBeNull();
    // The first instant dropped is the one after the last fired before the kill, and none of them fired.
    const firedIds = new Set(fired().map((t) => t.taskId));
    expect(alerts[0]?.taskId).toBe(`${id}@${m![2]}`);
    expect(firedIds.has(`${id}@${m![2]}`)).toBe(false);
    expect(Date.parse(m![2]!)).toBeLessThanOrEqual(killedAt + 1000);
    expect(Number(m![1])).toBe((Date.parse(m![3]!) - Date.parse(m![2]!)) / 1000 + 1);
    // Down longer than the window: at least the seconds from the kill to the window's start were too old.
    expect(Number(m![4])).toBeGreaterThanOrEqual(2);
    expect(Number(m![4])).toBeLessThan(Number(m![1]));
    expect(requestsTo(`/${id}`)).toHaveLength(1);
  });
  describe('deadline alerts', () => {
    let state: TopicReader;
    beforeEach(async () => {
      state = await new TopicReader([{ topic: SCHEDULER_STATE_TOPIC, fromEnd: true }]).start();
    });
    afterEach(async () => {
      await state.stop();
    });

    /** The deadline timer records of a run on the state topic: `armed` (its value) or `deleted` (its tombstone). */
    const timerRecords = (taskId: string): string[] =>
      state.records
        .filter((r) => r.topic === SCHEDULER_STATE_TOPIC && r.key === `${sg.group}/deadline/${taskId}`)
        .map((r) => (r.value === null ? 'deleted' : 'armed'));
    /** A schedule file of one-shot entries at `runAt`, each with its processor's payload and deadlineSeconds. */
    const deadlineFile = async (
      runAt: number,
      entries: Array<{ id: string; processor: string; payload?: object; deadlineSeconds: number }>,
    ): Promise<string> => {
      const file = await groupScheduleFile([]);
      await writeFile(
        file,
        JSON.stringify({
          Schedules: entries.map((e) => ({
            Id: e.id,
            RunAt: iso(runAt),
            Topic: sg.topic,
            TaskMessageTemplate: {
              TaskProcessorName: e.processor,
              ...(e.payload ? { Payload: e.payload } : {}),
            },
            Alerts: {
              channel: { webhook: { url: `${hook}/${e.id}`, secret: { $secret: 'HOOK' } } },
              deadlineSeconds: e.deadlineSeconds,
            },
          })),
        }),
      );
      return file;
    };
    const deliveries = (id: string): TaskMessage[] =>
      sg.tasks().filter((t) => t.taskId.startsWith(`alert/${id}/deadline@`));

    it('should raise one deadline alert of a run not FINISHED in time, and none of a run that finished in time', async () => {
      const slow = uniqueName('slow');
      const quick = uniqueName('quick');
      const runAt = Math.ceil((Date.now() + 2000) / 1000) * 1000;
      const file = await deadlineFile(runAt, [
        { id: slow, processor: 'SleepProcessor', payload: { ms: 8000 }, deadlineSeconds: 3 },
        { id: quick, processor: 'NoopProcessor', deadlineSeconds: 5 },
      ]);
      consumer();
      sg.scheduler(file);
      const slowRun = `${slow}@${iso(runAt)}`;
      const quickRun = `${quick}@${iso(runAt)}`;
      await waitFor(
        () =>
          eventsOf(`alert/${slow}/deadline@`).some((e) => e.status === 'FINISHED') &&
          eventsOf(`${slow}@`).some((e) => e.status === 'FINISHED') &&
          timerRecords(quickRun).includes('deleted') &&
          timerRecords(slowRun).includes('deleted'),
        {
          timeoutMs: 60_000,
          what: () =>
            `the deadline alert delivered, the run finished and both timers deleted (events: ${eventsOf(slow)
              .map((e) => e.status)
              .join(
                ', ',
              )}; timers: ${timerRecords(slowRun).join(',')} / ${timerRecords(quickRun).join(',')})`,
        },
      );
      const run = eventsOf(`${slow}@`);
      const alerts = run.filter((e) => e.status === 'ALERT');
      expect(alerts.map((e) => [e.taskId, e.alert?.kind, e.by.role])).toEqual([
        [slowRun, 'deadline', 'scheduler'],
      ]);
      expect(alerts[0]?.alert?.reason).toBe('not FINISHED 3 s after its instant: EXECUTING attempt 1');
      // Raised at its deadline, while the run went on.
      const finished = run.find((e) => e.status === 'FINISHED');
      expect(Date.parse(alerts[0]!.at)).toBeGreaterThanOrEqual(runAt + 3000);
      expect(Date.parse(alerts[0]!.at)).toBeLessThan(Date.parse(finished!.at));
      expect(deliveries(slow).map((t) => t.taskId)).toEqual([`alert/${slow}/deadline@${iso(runAt)}`]);
      const [req, ...more] = requestsTo(`/${slow}`);
      expect(more).toEqual([]);
      expect(req?.headers['x-taskmanager-signature']).toBe(
        `sha256=${createHmac('sha256', SECRET).update(req!.body).digest('hex')}`,
      );
      expect(JSON.parse(req!.body.toString('utf8'))).toMatchObject({ kind: 'deadline', taskId: slowRun });
      // The quick run FINISHED before its deadline: its timer was deleted with no alert.
      expect(timerRecords(quickRun)).toEqual(['armed', 'deleted']);
      expect(eventsOf(`${quick}@`).filter((e) => e.status === 'ALERT')).toEqual([]);
      expect(deliveries(quick)).toEqual([]);
      expect(requestsTo(`/${quick}`)).toEqual([]);
    });

    it('should raise a deadline alert once across a scheduler failover', async () => {
      const id = uniqueName('failover');
      const runAt = Math.ceil((Date.now() + 8000) / 1000) * 1000;
      const file = await deadlineFile(runAt, [
        { id, processor: 'SleepProcessor', payload: { ms: 25_000 }, deadlineSeconds: 6 },
      ]);
      consumer();
      // Both with their metrics port: the survivor counts the alert it raised.
      const scheduler = () =>
        startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', sg.group, '--metrics-port', '0']);
      const a = scheduler();
      const b = scheduler();
      await a.waitForOutput(/owning state partitions/, 30_000);
      await b.waitForOutput(/owning state partitions/, 30_000);
      const runId = `${id}@${iso(runAt)}`;
      const fire = await waitFor(() => sg.tasks().find((t) => t.taskId === runId), {
        timeoutMs: 30_000,
        what: 'the fire',
      });
      // The owner of the entry's state partition fired it, its timer in the same transaction: killed before the
      // deadline, with the run still going.
      const owner = fire.scheduler.pid === a.pid ? a : b;
      const survivor = owner === a ? b : a;
      owner.signal('SIGKILL');
      await owner.exited;
      expect(Date.now()).toBeLessThan(runAt + 6000);
      await waitFor(() => timerRecords(runId).includes('armed'), {
        timeoutMs: 30_000,
        what: 'the armed timer',
      });
      await waitFor(
        () =>
          eventsOf(`alert/${id}/deadline@`).some((e) => e.status === 'FINISHED') &&
          eventsOf(`${id}@`).some((e) => e.status === 'ALERT') &&
          timerRecords(runId).includes('deleted'),
        {
          timeoutMs: 60_000,
          what: () =>
            `the deadline alert delivered and its timer deleted (events: ${eventsOf(id)
              .map((e) => e.status)
              .join(', ')}; timer: ${timerRecords(runId).join(',')})`,
        },
      );
      const alerts = eventsOf(`${id}@`).filter((e) => e.status === 'ALERT');
      expect(alerts.map((e) => [e.alert?.kind, e.by.role, e.by.pid])).toEqual([
        ['deadline', 'scheduler', survivor.pid],
      ]);
      expect(alerts[0]?.alert?.reason).toBe('not FINISHED 6 s after its instant: EXECUTING attempt 1');
      expect(deliveries(id).map((t) => t.taskId)).toEqual([`alert/${id}/deadline@${iso(runAt)}`]);
      // One delivery, run once: the webhook got one request.
      expect(eventsOf(`alert/${id}/`).filter((e) => e.status === 'FINISHED')).toHaveLength(1);
      expect(requestsTo(`/${id}`)).toHaveLength(1);
      expect(timerRecords(runId)).toEqual(['armed', 'deleted']);
      const counted = async () =>
        total(await scrape(await opsUrl(survivor)), 'taskmanager_alerts_total', {
          group: sg.group,
          schedule: id,
          kind: 'deadline',
        });
      await waitFor(async () => (await counted()) > 0, { timeoutMs: 10_000, what: 'the alert counted' });
      expect(await counted()).toBe(1);
    });
  });
});
