import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { heldTask, startApi, TEST_ADMIN } from './helpers/api.js';
import type { Api } from './helpers/api.js';
import { hashPassword } from '../../src/api/auth/passwords.js';
import { USERS_TOPIC } from '../../src/api/auth/user-view.js';
import { brokers, kafka, produce, TopicReader, uniqueName, useTaskTopic } from './helpers/kafka.js';
import { EVENTS_TOPIC, statusEvent, statusEventRecord } from '../../src/shared/codecs/task-event.js';
import { killAll, ROOT, startCli } from './helpers/processes.js';
import { fixtureConsumer, publishTasks, scheduleFile, taskMessage } from './helpers/tasks.js';
import { aptInstall } from '../kit/apt.js';
import { waitFor } from '../kit/wait.js';

const CHROMIUM = '/usr/bin/chromium';
const SHOTS = join(ROOT, 'test-results');

/** Debian's chromium, installed with apt when missing (never skipped in CI). */
function ensureChromium(): string | undefined {
  if (existsSync(CHROMIUM)) return undefined;
  const failed = aptInstall(['chromium']);
  if (existsSync(CHROMIUM)) return undefined;
  const why = failed ?? `apt-get install chromium left no ${CHROMIUM}`;
  if (process.env.CI) throw new Error(why);
  return why;
}

describe('the dashboard at /ui in headless Chromium', () => {
  const fx = useTaskTopic({ beforeEach, afterEach, killAll });
  let browser: Browser | undefined;
  let skip: string | undefined;

  beforeAll(async () => {
    skip = ensureChromium();
    if (skip) console.warn(`SKIPPING the dashboard tests: ${skip}`);
    else
      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu'] });
    mkdirSync(SHOTS, { recursive: true });
  }, 660_000);
  afterAll(async () => {
    await browser?.close();
  });

  /** What Chromium refused under taskapi's Content-Security-Policy (an inline style or script left in the page). */
  const refusedByCsp: string[] = [];
  beforeEach(() => void refusedByCsp.splice(0));
  const login = async (api: Api, username: string, password: string): Promise<Page> => {
    const page = await browser!.newPage({ viewport: { width: 1280, height: 800 } });
    page.on('dialog', (d) => void d.accept());
    page.on('console', (m) => {
      if (/Content Security Policy/i.test(m.text())) refusedByCsp.push(m.text());
    });
    await page.goto(`${api.url}/ui`);
    await page.fill('input[name=username]', username);
    await page.fill('input[name=password]', password);
    await page.click('button[type=submit]');
    return page;
  };
  /** Waits for the page's outcome line to match; on timeout, says what it showed instead. */
  const flashSays = async (page: Page, want: RegExp): Promise<string> => {
    const seen: string[] = [];
    return waitFor(
      async () => {
        const text = (await page.textContent('#flash')) ?? '';
        if (text && seen.at(-1) !== text) seen.push(text);
        return want.test(text) ? text : undefined;
      },
      {
        timeoutMs: 15_000,
        what: () => `the page to say ${want} (it said: ${JSON.stringify(seen)}; at ${page.url()})`,
      },
    );
  };
  /**
   * Counted by Playwright's selector engine, never by a string evaluated in the page (waitForFunction): taskapi's
   * Content-Security-Policy forbids eval, as it should.
   */
  const rows = (page: Page, selector: string): Promise<number> => page.locator(selector).count();
  const POLL = { timeout: 30_000, interval: 100 };
  /** The rows of the page's audit table as [what, who, action], read through Playwright's locators. */
  const auditRows = async (page: Page): Promise<Array<Array<string | null>>> => {
    const rows = page.locator('#audit tbody tr');
    const out: Array<Array<string | null>> = [];
    for (let i = 0; i < (await rows.count()); i++) {
      const row = rows.nth(i);
      const cells = row.locator('td');
      out.push([
        await cells.nth(2).textContent({ timeout: 1000 }),
        await cells.nth(1).textContent({ timeout: 1000 }),
        await row.getAttribute('data-action', { timeout: 1000 }),
      ]);
    }
    return out;
  };
  const runs = async (api: Api, id: string) =>
    (
      await api.call<{ items: Array<{ taskId: string; state: string; scheduledFor: string }> }>(
        'GET',
        `/api/v1/tasks/${id}/runs`,
      )
    ).body.items;

  it('should show tasks, runs appearing live, and let an operator trigger, pause and replay, and a viewer only look', async (ctx) => {
    if (skip) return ctx.skip();
    // Every name of this test shares `run`: searching for it shows only this test's schedules (the broker is shared).
    const run = uniqueName('ui');
    const group = `${run}-group`;
    const api = await startApi(['--group', group, '--topic', fx.topic]);
    // One schedule from a file, in the group that also fires the API tasks.
    const fileEntry = `${run}-file`;
    const file = await scheduleFile(fx.topic, [[fileEntry, '*/2 * * * * *']]);
    startCli('taskscheduler', ['-b', brokers(), '-s', file, '--group', group]);
    const consumerGroup = uniqueName('c');
    fixtureConsumer(fx.topic, consumerGroup);
    const id = `${run}-task`;
    expect(
      (
        await api.call('POST', '/api/v1/tasks', {
          id,
          processor: 'NoopProcessor',
          schedule: { every: '2s' },
          payload: { headers: { Authorization: 'Bearer ui-secret-value', 'X-Trace': 'ui-visible' } },
        })
      ).status,
    ).toBe(201);
    const canary = (
      await api.call<{ id: string }>('POST', '/api/v1/tasks', {
        processor: 'NoopProcessor',
        schedule: { every: '1s' },
      })
    ).body.id;

    const page = await login(api, TEST_ADMIN.username, TEST_ADMIN.password);
    // The overview: the file's schedule and the API's task in one table, each with the instance firing it.
    const row = (rowId: string) => `#tasks tr[data-id="${rowId}"]`;
    // The shared broker holds the schedules of every test file (over a page of them by the time this one runs):
    // this test's are found by searching.
    await page.fill('#search', run);
    await page.waitForSelector(`${row(fileEntry)}[data-source="file"] td.owner:not(:text("no instance"))`, {
      timeout: 30_000,
    });
    await page.waitForSelector(`${row(id)}[data-source="api"] td.owner:not(:text("no instance"))`, {
      timeout: 30_000,
    });
    expect(await page.textContent(row(fileEntry))).toContain('Every 2 seconds');
    await page.fill('#search', fileEntry);
    await expect.poll(() => rows(page, '#tasks tbody tr'), POLL).toBe(1);
    await page.fill('#search', run);
    await expect.poll(() => rows(page, '#tasks tbody tr'), POLL).toBe(3);
    await page.screenshot({ path: join(SHOTS, 'dashboard-tasks.png') });

    // The file schedule's page: its runs appear live; pause and resume go through its owner.
    await page.click(row(fileEntry));
    await page.waitForSelector('#runs td.FINISHED', { timeout: 20_000 });
    await page.click('#toggle');
    await page.waitForSelector('#task-status.paused', { timeout: 10_000 });
    await page.click('#toggle');
    await page.waitForSelector('#task-status.enabled', { timeout: 10_000 });
    // Who did it, on the schedule's page: the pause and the resume, newest first.
    await expect
      .poll(() => auditRows(page), POLL)
      .toEqual([
        ['resumed', TEST_ADMIN.username, 'schedule.resumed'],
        ['paused', TEST_ADMIN.username, 'schedule.paused'],
      ]);
    await page.screenshot({ path: join(SHOTS, 'dashboard-schedule.png') });
    await page.goto(`${api.url}/ui#/tasks`);
    await page.waitForSelector(row(id));

    // The task's page: a run appears without a reload.
    await page.click(`#tasks tr[data-id="${id}"]`);
    await page.waitForSelector('#runs');
    expect(await page.textContent('#main')).toContain('Bearer ui-secret-value');
    const before = await page.locator('#runs tbody tr').count();
    await expect
      .poll(() => rows(page, '#runs tbody tr'), { ...POLL, timeout: 20_000 })
      .toBeGreaterThan(before);
    expect(await page.locator('#next tbody tr').count()).toBe(10);

    // Trigger: confirmed, fired with a millisecond taskId, and seen to finish.
    await page.click('#trigger');
    const taskId = (await flashSays(page, /fired as /)).replace('fired as ', '').trim();
    await page.waitForSelector(`#runs tr[data-task-id="${taskId}"] td.FINISHED`, { timeout: 20_000 });
    await page.screenshot({ path: join(SHOTS, 'dashboard-task.png') });

    // Pause: no run after it, while the canary keeps firing.
    await page.click('#toggle');
    await page.waitForSelector('#task-status.PAUSED', { timeout: 10_000 });
    // The task's page says who created, triggered and paused it, newest first.
    const trail = [
      ['paused', TEST_ADMIN.username, 'task.changed'],
      [`triggered ${taskId}`, TEST_ADMIN.username, 'task.triggered'],
      ['created', TEST_ADMIN.username, 'task.created'],
    ];
    await expect.poll(() => auditRows(page), POLL).toEqual(trail);
    // The Audit page finds them by task.
    await page.goto(`${api.url}/ui#/audit`);
    await page.fill('#audit-task', id);
    await page.dispatchEvent('#audit-task', 'change');
    await expect.poll(() => auditRows(page), POLL).toEqual(trail);
    expect(await page.textContent('#audit tbody tr')).toContain(group);
    await page.screenshot({ path: join(SHOTS, 'dashboard-audit.png') });
    // The scheduler learns of the pause from taskmanager.tasks, a fetch later: on a loaded machine that took over a
    // second once, so fires due within two seconds of it are not counted.
    const pausedAt = Date.now() + 1000;
    await waitFor(
      async () =>
        (await runs(api, canary)).filter((r) => Date.parse(r.scheduledFor) > pausedAt + 1000).length >= 3,
      {
        timeoutMs: 20_000,
        what: 'three canary runs after the pause',
      },
    );
    expect(
      (await runs(api, id)).filter(
        (r) => Date.parse(r.scheduledFor) > pausedAt + 1000 && r.taskId.endsWith('Z'),
      ),
    ).toEqual([]);
    // Overlap: chosen on the task's page, saved as the task's own, shown there after its redraws.
    await page.goto(`${api.url}/ui#/task/${id}`);
    await page.selectOption('#overlap', 'skip');
    await flashSays(page, /^overlap skip$/);
    expect((await api.call<{ overlap?: string }>('GET', `/api/v1/tasks/${id}`)).body.overlap).toBe('skip');
    await expect.poll(() => page.inputValue('#overlap'), POLL).toBe('skip');
    expect(await page.textContent('#main')).toContain('"overlap": "skip"');

    // Failures: a dead-lettered task, replayed from the page.
    const bad = taskMessage(uniqueName('ui-bad'), 'BadInputProcessor');
    await publishTasks(fx.topic, [bad]);
    await page.goto(`${api.url}/ui#/failures`);
    // What is typed in the topic field outlives the page's redraws (every 2 s) until it is confirmed.
    await page.fill('#dlq-topic', fx.topic);
    const typedInto = await page.waitForSelector('#dlq-topic');
    await typedInto.waitForElementState('hidden', { timeout: 10_000 }); // redrawn: this field is gone
    expect(await page.inputValue('#dlq-topic')).toBe(fx.topic);
    await page.dispatchEvent('#dlq-topic', 'change');
    await page.waitForSelector(`#dlq tr[data-task-id="${bad.taskId}"] button.replay`, { timeout: 30_000 });
    await page.screenshot({ path: join(SHOTS, 'dashboard-failures.png') });
    await page.click(`#dlq tr[data-task-id="${bad.taskId}"] button.replay`);
    await flashSays(page, /replayed 1/);
    await page
      .locator(`#dlq tr[data-task-id=${JSON.stringify(bad.taskId)}]`)
      .filter({ hasText: 'replayed' })
      .first()
      .waitFor({ timeout: 10_000 });
    // Cancel: a run that hangs, stopped from its row.
    const hang = `${run}-hang`;
    expect(
      (
        await api.call('POST', '/api/v1/tasks', {
          id: hang,
          processor: 'HangProcessor',
          schedule: { runAt: new Date().toISOString() },
        })
      ).status,
    ).toBe(201);
    await page.goto(`${api.url}/ui#/task/${hang}`);
    await page.click('#runs td.RUNNING ~ td button.cancel', { timeout: 30_000 });
    await flashSays(page, /^cancel of .* requested/);
    await page.waitForSelector('#runs td.CANCELLED', { timeout: 20_000 });
    expect(await page.locator('#runs button.cancel').count()).toBe(0);
    // Health: the scheduler instance with its partitions, the consumer group with lag per partition, the charts.
    // Another application's consumer group on the task topic is not ours to show.
    const otherApp = await new TopicReader([fx.topic]).start();
    await page.goto(`${api.url}/ui#/health`);
    await page.waitForSelector('#ready.FINISHED');
    await page.waitForSelector(`#schedulers tr.scheduler-group:has-text("${group}") .instance.FINISHED`);
    await page.waitForSelector(
      `#consumers section.consumer-group[data-group="${consumerGroup}"] table.lag tbody tr`,
    );
    // The page redraws as it polls: count once a redraw holds all 12.
    await expect
      .poll(
        () =>
          page.locator(`section.consumer-group[data-group="${consumerGroup}"] table.lag tbody tr`).count(),
        POLL,
      )
      .toBe(12);
    // The charts draw the per-second counts of the last 5 minutes: tasks fired and finished during this test.
    const { rates } = (
      await api.call<{ rates: { fired: number[]; finished: number[] } }>('GET', '/api/v1/cluster')
    ).body;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect([rates.fired.length, sum(rates.fired) > 5, sum(rates.finished) > 5]).toEqual([300, true, true]);
    const { consumers } = (
      await api.call<{ consumers: Array<{ group: string; members: Array<{ clientId: string }> }> }>(
        'GET',
        '/api/v1/cluster',
      )
    ).body;
    await otherApp.stop();
    expect(consumers.map((c) => c.group)).toContain(consumerGroup);
    expect(consumers.filter((c) => !c.members.some((m) => m.clientId.startsWith('taskconsumer-')))).toEqual(
      [],
    );
    for (const series of ['fired', 'finished']) {
      const points =
        (await page.getAttribute(`#tasks-chart polyline[data-series="${series}"]`, 'points')) ?? '';
      const ys = points.split(' ').map((p) => p.split(',')[1]);
      expect([ys.length, new Set(ys).size > 1]).toEqual([300, true]);
    }
    // The series' colours come from style.css classes (no inline style): the lines are drawn in them.
    expect(
      await page.evaluate(
        `getComputedStyle(document.querySelector('#tasks-chart polyline[data-series="failed"]')).stroke`,
      ),
    ).toBe('rgb(179, 38, 30)');
    await page.screenshot({ path: join(SHOTS, 'dashboard-health.png') });

    // A viewer sees no action buttons, and a forged action gets 403.
    const viewer = uniqueName('ui-viewer');
    await api.call('POST', '/api/v1/users', {
      username: viewer,
      password: 'viewer-password',
      role: 'viewer',
    });
    const vpage = await login(api, viewer, 'viewer-password');
    await vpage.fill('#search', run);
    await vpage.waitForSelector(`#tasks tr[data-id="${id}"]`);
    await vpage.goto(`${api.url}/ui#/task/${id}`);
    await vpage.waitForSelector('#runs');
    expect(await vpage.locator('#actions, #trigger, #save').count()).toBe(0);
    // Fields named like secrets show as [redacted] to a viewer; the rest of the payload as it is.
    const shown = (await vpage.textContent('#main')) ?? '';
    expect([
      shown.includes('ui-secret-value'),
      shown.includes('[redacted]'),
      shown.includes('ui-visible'),
    ]).toEqual([false, true, true]);
    const forged = await vpage.evaluate(
      `fetch(${JSON.stringify(`/api/v1/tasks/${id}/trigger`)}, { method: 'POST', headers: { authorization: 'Bearer ' + sessionStorage.getItem('tm-token') } }).then((r) => r.status)`,
    );
    expect(forged).toBe(403);
    await vpage.screenshot({ path: join(SHOTS, 'dashboard-viewer.png') });
    expect(refusedByCsp).toEqual([]);
  }, 180_000);

  it('should show a run’s log lines and progress live on its run view', async (ctx) => {
    if (skip) return ctx.skip();
    const api = await startApi(['--topic', fx.topic]);
    fixtureConsumer(fx.topic);
    const id = uniqueName('ui-logs');
    await heldTask(api, id, 'LogsAndProgressProcessor');
    const go = join(mkdtempSync(join(tmpdir(), 'ui-logs-')), 'go');
    const task = taskMessage(id, 'LogsAndProgressProcessor', { lines: 10, waitFile: go });
    await publishTasks(fx.topic, [task]);

    const page = await login(api, TEST_ADMIN.username, TEST_ADMIN.password);
    // Logged in (the login goes to the overview) before going to the task.
    await page.waitForSelector('#tasks', { timeout: 15_000 });
    await page.goto(`${api.url}/ui#/task/${id}`);
    await page.click(`#runs tr[data-task-id="${task.taskId}"] a.run-link`, { timeout: 30_000 });
    // While it runs: its lines so far and its progress, refreshed with the page.
    await page.waitForSelector('#run-state.RUNNING', { timeout: 30_000 });
    await page.waitForSelector('#run-progress .pct:text("100%")', { timeout: 30_000 });
    await page.waitForSelector('#run-log:has-text("line 10 of 10")', { timeout: 30_000 });
    expect(await page.textContent('#run-progress')).toContain('line 10 of 10');
    expect(await page.locator('#run-log span').count()).toBe(10);
    writeFileSync(go, '');
    await page.waitForSelector('#run-state.FINISHED', { timeout: 30_000 });
    await page.waitForSelector('#run-log span.log-warn:has-text("done")', { timeout: 30_000 });
    const log = (await page.textContent('#run-log')) ?? '';
    expect(log.split('\n').map((l) => l.replace(/^\S+ /, ''))).toEqual([
      ...Array.from({ length: 10 }, (_, i) => `#1 info     line ${i + 1} of 10`),
      '#1 warn     done',
    ]);
    await page.screenshot({ path: join(SHOTS, 'dashboard-run-log.png') });
    expect(refusedByCsp).toEqual([]);
  }, 120_000);

  it('should list open alerts and let an operator acknowledge one', async (ctx) => {
    if (skip) return ctx.skip();
    const api = await startApi(['--topic', fx.topic]);
    const id = uniqueName('ui-alert');
    const taskId = `${id}@2026-12-07T02:00:00.000Z`;
    // An ALERT event as a consumer writes it for a run that failed for good.
    const event = statusEventRecord(
      statusEvent(
        { taskId, scheduleId: id },
        'ALERT',
        new Date().toISOString(),
        0,
        {
          host: 'test',
          pid: process.pid,
          role: 'consumer',
        },
        { alert: { kind: 'failed', reason: 'attempts-exhausted after 5 attempt(s): exit code 1' } },
      ),
    );
    await produce(EVENTS_TOPIC, [
      { key: event.key, value: event.value, headers: event.headers as Record<string, string> },
    ]);

    const page = await login(api, TEST_ADMIN.username, TEST_ADMIN.password);
    await page.waitForSelector('#tasks', { timeout: 15_000 });
    await page.goto(`${api.url}/ui#/alerts`);
    const row = page.locator('#alerts tbody tr').filter({ hasText: taskId });
    await row.waitFor({ timeout: 30_000 });
    expect(await row.textContent()).toContain('attempts-exhausted after 5 attempt(s): exit code 1');
    await page.screenshot({ path: join(SHOTS, 'dashboard-alerts.png') });
    await row.locator('button.ack').click();
    await flashSays(page, /acknowledged/);
    await expect.poll(() => row.count(), POLL).toBe(0);
    const acked = await api.call<{ items: Array<{ taskId: string; acknowledged?: { user: string } }> }>(
      'GET',
      '/api/v1/alerts?all=true',
    );
    expect(acked.body.items.find((a) => a.taskId === taskId)?.acknowledged?.user).toBe(TEST_ADMIN.username);
    expect(refusedByCsp).toEqual([]);
  }, 120_000);

  it('should have a user whose password came from taskapi’s environment choose a new one first', async (ctx) => {
    if (skip) return ctx.skip();
    const api = await startApi([]);
    // As taskapi makes its first admin from TASKAPI_ADMIN_PASSWORD (a fresh users topic is not ours to have here).
    const name = uniqueName('ui-first');
    const now = new Date().toISOString();
    const producer = kafka().producer();
    await producer.connect();
    await producer.send({
      topic: USERS_TOPIC,
      messages: [
        {
          key: `user:${name}`,
          value: JSON.stringify({
            v: 1,
            kind: 'user',
            name,
            role: 'operator',
            passwordHash: await hashPassword('password-from-env'),
            createdAt: now,
            updatedAt: now,
            createdBy: 'env:TASKAPI_ADMIN_USER',
            mustChangePassword: true,
          }),
        },
      ],
    });
    await producer.disconnect();
    await waitFor(async () => (await api.call('GET', `/api/v1/users/${name}`)).status === 200, {
      timeoutMs: 10_000,
      what: `taskapi reading user ${name}`,
    });

    const page = await login(api, name, 'password-from-env');
    await page.waitForSelector('#change-password');
    await page.fill('#change-password input[name=current]', 'password-from-env');
    await page.fill('#change-password input[name=password]', 'a-password-of-my-own');
    await page.fill('#change-password input[name=again]', 'a-password-of-my-own');
    await page.screenshot({ path: join(SHOTS, 'dashboard-change-password.png') });
    await page.click('#change-password button[type=submit]');
    // Logged in again with the new password, and let in.
    await page.waitForSelector('#tasks', { timeout: 15_000 });
    expect(await api.login(name, 'a-password-of-my-own')).toBeTruthy();
    expect(refusedByCsp).toEqual([]);
  }, 60_000);
});
