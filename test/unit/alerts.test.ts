import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { webhookProcessor, webhookSignature } from '../../src/processors/webhook-processor.js';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import { lateAlertOf, missedReason } from '../../src/scheduler/fire-alerts.js';
import { AlertBook } from '../../src/api/alert-book.js';
import { RunHistory } from '../../src/api/run-history.js';
import { decodeTaskMessage, encodeTaskMessage, taskMessageOf } from '../../src/shared/codecs/task-message.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import {
  EVENTS_TOPIC,
  parseStatusEvent,
  parseStatusEvents,
  statusEvent,
} from '../../src/shared/codecs/task-event.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { alertDelivery } from '../../src/shared/schedule/alerts.js';
import type { AlertsOption } from '../../src/shared/schedule/alerts.js';
import type { ProcessorContext } from '../../src/processors/types.js';
import type { InRecord } from '../../src/shared/kafka/index.js';
import { NonRetriableError } from '../../src/shared/errors.js';
import { consumerFixture, taskRecord, TOPIC } from './helpers/consumer-fixture.js';
import { cronEntry } from './helpers/entries.js';
import { catchUp } from '../../src/scheduler/catch-up.js';
import { EntryStates } from '../../src/scheduler/entry-states.js';
import { specHashOf } from '../../src/shared/codecs/scheduler-state.js';
import type { DroppedInstants } from '../../src/scheduler/misfire.js';
import { apiAppPerTest, callAs, nightlyWithAlerts, operatorAndViewer } from './helpers/api-app.js';
import { AUDIT_TOPIC, statusEventRecord } from '../../src/shared/codecs/task-event.js';
import { settle } from './helpers/settle.js';

const never = new AbortController().signal;
const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const scheduler = { host: 'h1', pid: 42, group: 'g' };
const HOOK: AlertsOption = {
  channel: { webhook: { url: 'https://hooks.example.com/t', secret: { $secret: 'HOOK' } } },
  skipped: true,
  overrunSeconds: 5,
};

/** The fixture's task record of `offset`, its message carrying `alerts`. */
function alerting(offset: number, alerts: AlertsOption = HOOK): InRecord {
  const rec = taskRecord(offset, { key: 'nightly' });
  const task = JSON.parse(String(rec.value)) as TaskMessage;
  return { ...rec, value: Buffer.from(encodeTaskMessage({ ...task, alerts })) };
}

const text = (v: unknown): string => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

describe('alerts', () => {
  describe('when a schedule file sets Alerts', () => {
    const entry = (id: string, extra = '') =>
      `{"Id":"${id}","Cron":"0 * * * * *","Topic":"t",${extra}"TaskMessageTemplate":{"TaskProcessorName":"p"}}`;

    it('should take the entry’s own, else the file’s Alerts section', () => {
      const own = { channel: { email: { to: 'ops@example.com' } }, lateSeconds: 30 };
      const [a, b] = parseScheduleText(
        'f.json',
        `{"Alerts":${JSON.stringify(HOOK)},"Schedules":[${entry('a', `"Alerts":${JSON.stringify(own)},`)},${entry('b')}]}`,
      );
      expect(a?.alerts).toEqual(own);
      expect(b?.alerts).toEqual(HOOK);
      // A Slack incoming webhook's URL is its credential: it may be a secret reference too.
      const slack = { channel: { webhook: { url: { $secret: 'SLACK_URL' }, slack: true } } };
      const [ref] = parseScheduleText('f.json', `[${entry('s', `"Alerts":${JSON.stringify(slack)},`)}]`);
      expect(ref?.alerts).toEqual(slack);
      const [bare] = parseScheduleText('f.json', `[${entry('c')}]`);
      expect(bare?.alerts).toBeUndefined();
    });

    it('should refuse a wrong one with one line naming file, entry and field', () => {
      const problems = (alerts: unknown): string => {
        try {
          parseScheduleText('f.json', `[${entry('a', `"Alerts":${JSON.stringify(alerts)},`)}]`);
        } catch (err) {
          expect(err).toBeInstanceOf(ConfigError);
          return (err as ConfigError).message;
        }
        return expect.unreachable() as never;
      };
      expect(problems({ channel: {} })).toContain(
        'f.json: [0] (Id "a") Alerts.channel: must NOT have fewer than 1 properties',
      );
      expect(problems({ channel: { email: { to: 'a@b.c' }, webhook: { url: 'https://x' } } })).toContain(
        'f.json: [0] (Id "a") Alerts.channel: must NOT have more than 1 properties',
      );
      expect(problems({ channel: { email: { to: 'a@b.c' } }, lateSeconds: 0 })).toContain(
        'f.json: [0] (Id "a") Alerts.lateSeconds: must be >= 1',
      );
      expect(problems({ channel: { webhook: { url: 'https://x', secret: { $secret: 'a b' } } } })).toContain(
        'f.json: [0] (Id "a") Alerts.channel.webhook.secret.$secret: must match pattern',
      );
      // A value of none of the url's forms is one line, in the words of its description.
      expect(problems({ channel: { webhook: { url: 'ftp://x' } } })).toBe(
        'f.json: [0] (Id "a") Alerts.channel.webhook.url: must be an http(s) URL, or {"$secret": NAME} when the URL is itself a credential (Slack)',
      );
      expect(problems({ channel: { webhook: { url: 'https://x', secret: 'plain' } } })).toContain(
        'Alerts.channel.webhook.secret: must be object',
      );
    });
  });

  describe('when a fire of a schedule with alerts is encoded', () => {
    it('should carry them in the message, the same bytes as the typed encoder', () => {
      const e = cronEntry('a', '0 * * * * *', { alerts: HOOK });
      const [task] = new FireEncoder('g', 0, scheduler).records([{ entry: e, scheduledFor: T0 }], T0 + 3);
      const typed = taskMessageOf(
        { scheduleId: 'a', processor: e.processor, alerts: HOOK },
        T0,
        T0 + 3,
        scheduler,
      );
      expect(text(task?.value)).toBe(encodeTaskMessage(typed));
      expect(decodeTaskMessage(Buffer.from(text(task?.value))).alerts).toEqual(HOOK);
    });

    it('should raise a late alert in the fire’s records only past lateSeconds', () => {
      const e = cronEntry('a', '0 * * * * *', { alerts: { ...HOOK, lateSeconds: 10 } });
      const enc = new FireEncoder('g', 0, scheduler);
      const onTime = enc.records([{ entry: e, scheduledFor: T0 }], T0 + 10_000);
      expect(
        onTime
          .filter((r) => r.topic === EVENTS_TOPIC)
          .flatMap((r) => parseStatusEvents(Buffer.from(text(r.value)), r.headers))
          .map((x) => x.status),
      ).toEqual(['SCHEDULED']);
      const late = enc.records([{ entry: e, scheduledFor: T0 }], T0 + 10_001);
      const events = late
        .filter((r) => r.topic === EVENTS_TOPIC)
        .flatMap((r) => parseStatusEvents(Buffer.from(text(r.value)), r.headers));
      expect(events.map((x) => x.status).sort()).toEqual(['ALERT', 'SCHEDULED']);
      expect(events.find((x) => x.status === 'ALERT')).toMatchObject({
        taskId: 'a@2026-11-22T10:00:00.000Z',
        scheduleId: 'a',
        alert: { kind: 'late', reason: 'fired 10.0 s after it was due (lateSeconds 10)' },
        by: { role: 'scheduler' },
      });
      const delivery = late
        .filter((r) => r.topic === e.topic)
        .map((r) => decodeTaskMessage(Buffer.from(text(r.value))));
      expect(delivery.map((t) => t.taskId)).toEqual([
        'a@2026-11-22T10:00:00.000Z',
        'alert/a/late@2026-11-22T10:00:00.000Z',
      ]);
      expect(delivery[1]).toMatchObject({
        scheduleId: 'alert/a',
        processor: 'webhook',
        payload: {
          url: 'https://hooks.example.com/t',
          method: 'POST',
          body: { kind: 'late', scheduleId: 'a', taskId: 'a@2026-11-22T10:00:00.000Z', group: 'g' },
          sign: { secret: { $secret: 'HOOK' } },
        },
      });
      // The delivery carries no alerts of its own: an alert never raises another.
      expect(delivery[1]?.alerts).toBeUndefined();
    });

    it('should deliver by email with the alert as the subject and its JSON as the text', () => {
      const alert = {
        kind: 'failed' as const,
        scheduleId: 'a',
        taskId: 'a@2026-11-22T10:00:00.000Z',
        scheduledFor: '2026-11-22T10:00:00.000Z',
        reason: 'non-retriable after 1 attempt(s): boom',
        at: '2026-11-22T10:00:01.000Z',
      };
      const { processor, payload } = alertDelivery(alert, { email: { to: 'ops@example.com' } });
      expect(processor).toBe('email');
      expect(payload).toEqual({
        to: 'ops@example.com',
        subject:
          'taskmanager alert: failed of a (a@2026-11-22T10:00:00.000Z): non-retriable after 1 attempt(s): boom',
        text: JSON.stringify(
          {
            kind: 'failed',
            scheduleId: 'a',
            taskId: 'a@2026-11-22T10:00:00.000Z',
            reason: 'non-retriable after 1 attempt(s): boom',
            at: '2026-11-22T10:00:01.000Z',
          },
          null,
          2,
        ),
      });
    });

    it('should count no trigger, backfill or jitter delay as late', () => {
      const e = cronEntry('a', '0 * * * * *', { alerts: { ...HOOK, lateSeconds: 1 } });
      expect(lateAlertOf({ entry: e, scheduledFor: T0, manual: true }, T0 + 5000, 'g')).toBeUndefined();
      expect(
        lateAlertOf({ entry: e, scheduledFor: T0, manual: true, backfill: true }, T0 + 5000, 'g'),
      ).toBeUndefined();
      expect(lateAlertOf({ entry: e, scheduledFor: T0, dueAt: T0 + 4500 }, T0 + 5000, 'g')).toBeUndefined();
      expect(lateAlertOf({ entry: e, scheduledFor: T0, dueAt: T0 + 3000 }, T0 + 5000, 'g')?.kind).toBe(
        'late',
      );
    });
  });

  describe('when a takeover’s misfire policy drops instants of a schedule with alerts', () => {
    const every10 = (misfire: 'skip' | 'fire-once', alerts: AlertsOption = HOOK) =>
      cronEntry('a', '*/10 * * * * *', { misfire, alerts });
    const takeOver = (e: ReturnType<typeof every10>) => {
      const states = new EntryStates('g');
      states.set('a', { lastFiredMs: T0, specHash: specHashOf(e), paused: false, runs: 0 });
      const dropped: DroppedInstants[] = [];
      const { missed } = catchUp([e], states, T0 + 45_000, {
        logger: silentLogger,
        metrics: undefined,
        arm: () => undefined,
        dropped: (_e, d) => dropped.push(d),
      });
      return { missed, dropped };
    };
    const alertsIn = (records: ReturnType<FireEncoder['records']>) =>
      records
        .filter((r) => r.topic === EVENTS_TOPIC)
        .flatMap((r) => parseStatusEvents(Buffer.from(text(r.value)), r.headers))
        .filter((e) => e.status === 'ALERT');

    it('should note them only when the alerts ask for skipped (and missed) ones', () => {
      expect(takeOver(every10('skip')).dropped).toEqual([
        { count: 4, first: T0 + 10_000, last: T0 + 40_000, expired: 0 },
      ]);
      expect(takeOver(every10('fire-once')).dropped).toEqual([
        { count: 3, first: T0 + 10_000, last: T0 + 30_000, expired: 0 },
      ]);
      expect(takeOver(every10('skip', { ...HOOK, skipped: false })).dropped).toEqual([]);
      expect(takeOver(cronEntry('a', '*/10 * * * * *', { misfire: 'skip' })).dropped).toEqual([]);
    });

    it('should say which instants were older than the misfire window (the owner was down past it)', () => {
      const e = cronEntry('a', '*/10 * * * * *', {
        misfire: 'fire-once',
        alerts: HOOK,
        misfireWindowSeconds: 25,
      });
      const { dropped } = takeOver(e);
      expect(dropped).toEqual([{ count: 3, first: T0 + 10_000, last: T0 + 30_000, expired: 1 }]);
      expect(missedReason(e, dropped[0]!)).toBe(
        '3 instant(s) from 2026-11-22T10:00:10.000Z to 2026-11-22T10:00:30.000Z not fired: no scheduler owned ' +
          'the entry then; 1 older than MisfireWindowSeconds (25) when a scheduler could fire them, and of the ' +
          'others Misfire fire-once drops them',
      );
      expect(
        missedReason(e, { count: 10_000, first: T0, last: T0 + 9_999_000, expired: 10_000, more: true }),
      ).toBe(
        'more than 10000 instant(s) from 2026-11-22T10:00:00.000Z to 2026-11-22T12:46:39.000Z not fired: older ' +
          'than MisfireWindowSeconds (25) when a scheduler could fire them',
      );
    });

    it('should merge instants noted before the alert went out into one alert', () => {
      const enc = new FireEncoder('g', 0, scheduler);
      enc.missed.note('a', { count: 2, first: T0 + 10_000, last: T0 + 20_000, expired: 0 });
      enc.missed.note('a', { count: 3, first: T0 + 60_000, last: T0 + 80_000, expired: 3 });
      const e = every10('skip');
      const alerts = alertsIn(enc.records([{ entry: e, scheduledFor: T0 + 90_000 }], T0 + 90_000));
      expect(alerts.map((a) => [a?.taskId, a?.alert?.reason])).toEqual([
        [
          'a@2026-11-22T10:00:10.000Z',
          '5 instant(s) from 2026-11-22T10:00:10.000Z to 2026-11-22T10:01:20.000Z not fired: no scheduler owned ' +
            'the entry then; 3 older than MisfireWindowSeconds (3600) when a scheduler could fire them, and of ' +
            'the others Misfire skip drops them',
        ],
      ]);
    });

    it('should raise one missed alert with the entry’s first fire after, until that fire commits', () => {
      const e = every10('fire-once');
      const { missed, dropped } = takeOver(e);
      const enc = new FireEncoder('g', 0, scheduler);
      enc.missed.note('a', dropped[0]!);
      // A trigger is not the entry's fire: nothing yet.
      expect(
        alertsIn(enc.records([{ entry: e, scheduledFor: T0 + 45_001, manual: true }], T0 + 45_000)),
      ).toEqual([]);
      const first = enc.records(missed, T0 + 45_000);
      // A transaction that failed is sent again, with the alert again (it was never committed).
      expect(enc.records(missed, T0 + 45_100)).toHaveLength(first.length);
      expect(alertsIn(first)).toEqual([
        expect.objectContaining({
          taskId: 'a@2026-11-22T10:00:10.000Z',
          alert: {
            kind: 'missed',
            reason:
              '3 instant(s) from 2026-11-22T10:00:10.000Z to 2026-11-22T10:00:30.000Z not fired: no scheduler owned the entry then, and Misfire fire-once drops them',
          },
        }),
      ]);
      expect(
        first
          .filter((r) => r.topic === e.topic)
          .map((r) => decodeTaskMessage(Buffer.from(text(r.value))).taskId),
      ).toEqual(['a@2026-11-22T10:00:40.000Z', 'alert/a/missed@2026-11-22T10:00:10.000Z']);
      expect(enc.missed.acked(missed)).toEqual(['a']);
      expect(alertsIn(enc.records([{ entry: e, scheduledFor: T0 + 50_000 }], T0 + 50_000))).toEqual([]);
    });
  });

  describe('when the consumer runs a task of a schedule with alerts', () => {
    const alertsOf = (fx: ReturnType<typeof consumerFixture>): StatusEvent[] =>
      fx.events().filter((e) => e.status === 'ALERT');
    const deliveries = (fx: ReturnType<typeof consumerFixture>): TaskMessage[] =>
      fx.kafka
        .records(TOPIC, 0)
        .map((r) => decodeTaskMessage(r.value))
        .filter((t) => t.taskId.startsWith('alert/'));

    it('should raise one failed alert in the request of the DLQ record', async () => {
      const fx = consumerFixture([
        {
          name: 'P',
          process: () => Promise.reject(new NonRetriableError('bad input')),
        },
      ]);
      await expect(fx.runner.run(alerting(3), never)).resolves.toBe('done');
      expect(fx.dlq()).toHaveLength(1);
      expect(alertsOf(fx)).toEqual([
        expect.objectContaining({
          taskId: 'nightly@2026-11-25T08:00:03.000Z',
          alert: { kind: 'failed', reason: 'non-retriable after 1 attempt(s): bad input' },
          by: expect.objectContaining({ role: 'consumer' }),
        }),
      ]);
      expect(deliveries(fx).map((t) => t.taskId)).toEqual(['alert/nightly/failed@2026-11-25T08:00:03.000Z']);
    });

    it('should raise none when the schedule turned failed alerts off, or has no alerts', async () => {
      const fail = { name: 'P', process: () => Promise.reject(new NonRetriableError('bad input')) };
      const off = consumerFixture([fail]);
      await off.runner.run(alerting(3, { ...HOOK, failed: false }), never);
      const none = consumerFixture([fail]);
      await none.runner.run(taskRecord(3), never);
      expect([alertsOf(off), deliveries(off), alertsOf(none), none.dlq().length]).toEqual([[], [], [], 1]);
    });

    it('should raise a skipped alert with the SKIPPED event', async () => {
      const fx = consumerFixture([{ name: 'P', process: () => Promise.resolve({}) }]);
      await expect(fx.runner.skip(alerting(2), 'nightly@x is still running', never)).resolves.toBe('done');
      expect(fx.statuses()).toEqual(['SKIPPED/0', 'ALERT/0']);
      expect(alertsOf(fx)[0]?.alert).toEqual({
        kind: 'skipped',
        reason: 'not run: nightly@x is still running',
      });
      expect(deliveries(fx).map((t) => t.taskId)).toEqual(['alert/nightly/skipped@2026-11-25T08:00:02.000Z']);
    });

    it('should raise one overrun alert per run, whichever attempt overruns, and none for a quick one', async () => {
      const gates: Array<(fail: boolean) => void> = [];
      const fx = consumerFixture([
        {
          name: 'P',
          process: (_t: unknown, _ctx: ProcessorContext) =>
            new Promise((resolve, reject) =>
              gates.push((fail) => (fail ? reject(new Error('slow and failed')) : resolve({}))),
            ),
        },
      ]);
      const run = fx.runner.run(alerting(1), never);
      await settle();
      fx.clock.advance(4999);
      await settle();
      expect(alertsOf(fx)).toEqual([]);
      fx.clock.advance(1);
      await settle();
      expect(alertsOf(fx).map((e) => e.alert)).toEqual([
        {
          kind: 'overrun',
          reason: 'attempt 1 still running 5 s after it started (2026-11-25T08:01:00.000Z)',
        },
      ]);
      gates[0]?.(true);
      await settle();
      fx.clock.advance(1000);
      await settle();
      // The retry overruns too: no second alert for the run.
      fx.clock.advance(10_000);
      await settle();
      gates[1]?.(false);
      await expect(run).resolves.toBe('done');
      expect(alertsOf(fx)).toHaveLength(1);
      expect(deliveries(fx).map((t) => t.taskId)).toEqual(['alert/nightly/overrun@2026-11-25T08:00:01.000Z']);

      const quick = consumerFixture([{ name: 'P', process: () => Promise.resolve({}) }]);
      await quick.runner.run(alerting(1), never);
      quick.clock.advance(60_000);
      await settle();
      expect([alertsOf(quick), quick.clock.pendingTimers]).toEqual([[], 0]);
    });

    it('should write an overrun alert again when Kafka refused it, until it is taken', async () => {
      let finish = (): void => undefined;
      const fx = consumerFixture([
        { name: 'P', process: () => new Promise((resolve) => (finish = () => resolve({}))) },
      ]);
      const run = fx.runner.run(alerting(1), never);
      await settle();
      fx.failSends(2);
      fx.clock.advance(5000);
      await settle();
      expect(alertsOf(fx)).toEqual([]);
      // Retried with backoff (100 ms, then 200 ms).
      for (let i = 0; i < 10 && alertsOf(fx).length === 0; i++) {
        fx.clock.advance(250);
        await settle();
      }
      expect(alertsOf(fx).map((e) => e.alert?.kind)).toEqual(['overrun']);
      expect(deliveries(fx).map((t) => t.taskId)).toEqual(['alert/nightly/overrun@2026-11-25T08:00:01.000Z']);
      finish();
      await expect(run).resolves.toBe('done');
    });
  });

  describe('when taskapi folds ALERT events and acknowledgements', () => {
    const by = { host: 'c', pid: 1, role: 'consumer' as const };
    const alertEvent = (taskId: string, kind: 'failed' | 'overrun', at: string) =>
      statusEvent({ taskId, scheduleId: 'nightly' }, 'ALERT', at, 0, by, { alert: { kind, reason: 'why' } });

    it('should list open alerts newest first, once per alert, and drop an acknowledged one', () => {
      const book = new AlertBook(2);
      book.onEvent(alertEvent('nightly@2026-11-25T08:00:00.000Z', 'failed', '2026-11-25T08:00:05.000Z'));
      // A re-raise (the same alert written again after a crash) is the same alert.
      book.onEvent(alertEvent('nightly@2026-11-25T08:00:00.000Z', 'failed', '2026-11-25T08:00:09.000Z'));
      book.onEvent(alertEvent('nightly@2026-11-25T09:00:00.000Z', 'overrun', '2026-11-25T09:00:05.000Z'));
      const [newest, oldest] = book.list(false);
      expect([newest?.kind, oldest?.kind, oldest?.deliveryTaskId]).toEqual([
        'overrun',
        'failed',
        'alert/nightly/failed@2026-11-25T08:00:00.000Z',
      ]);
      // The acknowledgement as taskapi reads it back from taskmanager.audit.
      book.onAudit({
        v: 1,
        kind: 'audit',
        action: 'alert.acknowledged',
        alert: oldest!.id,
        schedule: 'nightly',
        taskId: oldest!.taskId,
        alertKind: 'failed',
        user: 'olga',
        at: '2026-11-25T10:00:00.000Z',
        from: { host: 'h', pid: 1 },
      });
      expect(book.list(false).map((a) => a.kind)).toEqual(['overrun']);
      expect(book.get(oldest!.id)?.acknowledged).toEqual({ user: 'olga', at: '2026-11-25T10:00:00.000Z' });
      // Bounded: a third alert drops the oldest kept.
      book.onEvent(alertEvent('nightly@2026-11-25T10:00:00.000Z', 'failed', '2026-11-25T10:00:05.000Z'));
      expect(book.list(true)).toHaveLength(2);
      expect(book.get(oldest!.id)).toBeUndefined();
    });

    it('should leave the state of the run alone', () => {
      const h = new RunHistory();
      const id = 'nightly@2026-11-25T08:00:00.000Z';
      h.fold(
        statusEvent({ taskId: id, scheduleId: 'nightly' }, 'EXECUTING', '2026-11-25T08:00:01.000Z', 1, by),
      );
      h.fold(alertEvent(id, 'overrun', '2026-11-25T08:00:06.000Z'));
      expect(h.latest('nightly')?.state).toBe('RUNNING');
      expect(parseStatusEvent(Buffer.from(JSON.stringify(alertEvent(id, 'overrun', 'x'))))?.alert?.kind).toBe(
        'overrun',
      );
    });
  });

  describe('when taskapi serves alerts', () => {
    const apis = apiAppPerTest();

    it('should take alerts on a task, list an ALERT event read, and acknowledge it as an audit event', async () => {
      const api = await apis.open();
      const [op, viewer] = await operatorAndViewer(api);
      const call = callAs(api);
      await nightlyWithAlerts(api, op, HOOK, '0 0 2 * * *');
      const wrong = await call(op, 'PATCH', '/api/v1/tasks/nightly', {
        alerts: { channel: { webhook: { url: 'ftp://x' } } },
      });
      expect([
        wrong.statusCode,
        wrong.json<{ errors: Array<{ pointer: string }> }>().errors[0]?.pointer,
      ]).toEqual([400, '/alerts/channel/webhook/url']);

      const taskId = 'nightly@2026-12-07T02:00:00.000Z';
      const by = { host: 'c', pid: 1, role: 'consumer' as const };
      api.kafka.write([
        statusEventRecord(
          statusEvent({ taskId, scheduleId: 'nightly' }, 'ALERT', '2026-12-07T02:00:09.000Z', 0, by, {
            alert: { kind: 'failed', reason: 'attempts-exhausted after 5 attempt(s): boom' },
          }),
        ),
      ]);
      type Items = {
        items: Array<{ id: string; kind: string; taskId: string; acknowledged?: { user: string } }>;
      };
      await settle();
      const [open] = (await call(viewer, 'GET', '/api/v1/alerts')).json<Items>().items;
      expect(open).toMatchObject({
        kind: 'failed',
        taskId,
        deliveryTaskId: 'alert/nightly/failed@2026-12-07T02:00:00.000Z',
      });
      expect((await call(viewer, 'POST', `/api/v1/alerts/${open!.id}/ack`)).statusCode).toBe(403);
      const acked = await call(op, 'POST', `/api/v1/alerts/${open!.id}/ack`);
      expect([acked.statusCode, acked.json<Items['items'][0]>().acknowledged?.user]).toEqual([200, 'op']);
      expect((await call(viewer, 'GET', '/api/v1/alerts')).json<Items>().items).toEqual([]);
      expect(
        (await call(viewer, 'GET', '/api/v1/alerts?all=true'))
          .json<Items>()
          .items.map((a) => a.acknowledged?.user),
      ).toEqual(['op']);
      const audit = api.kafka.records(AUDIT_TOPIC, 0);
      expect(
        audit
          .map((r) => JSON.parse(String(r.value)) as Record<string, unknown>)
          .filter((e) => e.action === 'alert.acknowledged'),
      ).toEqual([
        expect.objectContaining({
          alert: open!.id,
          schedule: 'nightly',
          taskId,
          alertKind: 'failed',
          user: 'op',
        }),
      ]);
      expect((await call(op, 'POST', '/api/v1/alerts/00000000000000000000/ack')).statusCode).toBe(404);
    });
  });

  describe('when a webhook task is signed', () => {
    let server: ReturnType<typeof createServer>;
    const got: Array<{ headers: IncomingHttpHeaders; body: Buffer }> = [];
    let url = '';
    beforeAll(async () => {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          got.push({ headers: req.headers, body: Buffer.concat(chunks) });
          res.end('ok');
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
    });
    afterAll(() => new Promise<void>((r) => server.close(() => r())));

    it('should compute HMAC-SHA256 of the body as sha256=<hex>', () => {
      // RFC 4231-style known answer (the HMAC-SHA256 example of Wikipedia).
      expect(webhookSignature('key', 'The quick brown fox jumps over the lazy dog')).toBe(
        'sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8',
      );
    });

    it('should send the signature of the exact bytes sent, in the header asked for', async () => {
      const p = webhookProcessor({ allow: ['127.0.0.1'] });
      const ctx = {
        signal: never,
        logger: silentLogger,
        attempt: 1,
        source: { topic: 't', partition: 0, offset: '0' },
        progress: () => undefined,
        output: () => undefined,
      } as unknown as ProcessorContext;
      const task = (payload: unknown) =>
        ({ taskId: 't@1', scheduleId: 't', processor: 'webhook', payload }) as unknown as TaskMessage;
      await p.process(
        task({ url, body: { kind: 'failed', note: 'ü "q"' }, sign: { secret: 's3cret' } }),
        ctx,
      );
      await p.process(task({ url, body: 'raw', sign: { secret: 's3cret', header: 'X-Sig' } }), ctx);
      await p.process(task({ url, body: { a: 1 } }), ctx);
      const [json, raw, plain] = got;
      const expected = `sha256=${createHmac('sha256', 's3cret').update(json!.body).digest('hex')}`;
      expect(json?.headers['x-taskmanager-signature']).toBe(expected);
      expect(JSON.parse(json!.body.toString('utf8'))).toEqual({ kind: 'failed', note: 'ü "q"' });
      expect(raw?.headers['x-sig']).toBe(webhookSignature('s3cret', 'raw'));
      expect(plain?.headers['x-taskmanager-signature']).toBeUndefined();
    });
  });
});
