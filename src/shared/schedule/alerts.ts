/**
 * A schedule's alerts (docs/schedule-file.md#alerts): which of its runs raise an alert and where it is delivered. An
 * alert is decided by the component that knows (the consumer: `failed`, `skipped`, `overrun`; the scheduler group's
 * owner: `late`, `missed`, `deadline`), written as an ALERT status event, and delivered as a task of its own on the schedule's
 * task topic for the `webhook` or `email` processor, with a taskId that names the run it is about
 * (`alert/<scheduleId>/<kind>@<instant>`), so a re-raise is recognisable and the processors' retries, dead-lettering,
 * address guard and secret references apply to it as to any task.
 */

/**
 * `failed`: dead-lettered; `skipped`: ended SKIPPED by the overlap policy; `missed`: instants a misfire policy did
 * not fire at a takeover; `late`: fired `lateSeconds` after its instant; `overrun`: still running `overrunSeconds`
 * after its attempt started; `deadline`: not FINISHED `deadlineSeconds` after its instant.
 */
export type AlertKind = 'failed' | 'skipped' | 'missed' | 'late' | 'overrun' | 'deadline';
export const ALERT_KINDS: readonly AlertKind[] = [
  'failed',
  'skipped',
  'missed',
  'late',
  'overrun',
  'deadline',
];

/** A `{"$secret": NAME}` reference, resolved by the consumer that delivers the alert. */
export interface SecretRef {
  $secret: string;
}

/** Where an alert goes. A webhook's `url` may be a secret reference itself: a Slack incoming webhook's is its key. */
export type AlertChannel =
  { webhook: { url: string | SecretRef; secret?: SecretRef; slack?: boolean } } | { email: { to: string } };

/** The `alerts` option of a schedule (the file's `Alerts`). */
export interface AlertsOption {
  channel: AlertChannel;
  /** A run that failed for good (dead-lettered). @default true */
  failed?: boolean;
  /** A run ended SKIPPED by the overlap policy `skip`, and instants a misfire policy dropped (`missed`). @default false */
  skipped?: boolean;
  /** A fire published more than this many seconds after its instant. */
  lateSeconds?: number;
  /** An attempt still running this many seconds after it started (once per run). */
  overrunSeconds?: number;
  /**
   * A run of an instant not FINISHED this many seconds after that instant (decided by the scheduler group's owner;
   * triggers and backfills have none).
   */
  deadlineSeconds?: number;
}

const SECRET_REF_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['$secret'],
  properties: { $secret: { type: 'string', pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$' } },
  description:
    'A secret reference resolved by the consumer: TASKMANAGER_SECRET_<NAME> or <--secrets-dir>/<NAME>',
} as const;

/** The JSON schema of the `alerts` option. */
export const ALERTS_OPTION_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['channel'],
  description:
    'Alerts of this schedule: failed (dead-lettered, default on), skipped (overlap skip, and instants a misfire policy dropped), lateSeconds (fired that long after its instant), overrunSeconds (an attempt still running that long after it started), deadlineSeconds (a run not FINISHED that long after its instant), delivered to one channel',
  properties: {
    channel: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      maxProperties: 1,
      description: 'Exactly one of webhook or email',
      properties: {
        webhook: {
          type: 'object',
          additionalProperties: false,
          required: ['url'],
          properties: {
            url: {
              anyOf: [{ type: 'string', pattern: '^https?://' }, SECRET_REF_SCHEMA],
              description: 'an http(s) URL, or {"$secret": NAME} when the URL is itself a credential (Slack)',
            },
            secret: SECRET_REF_SCHEMA,
            slack: {
              type: 'boolean',
              description: 'Send {"text": …} (a Slack incoming webhook) instead of the alert',
            },
          },
        },
        email: {
          type: 'object',
          additionalProperties: false,
          required: ['to'],
          properties: { to: { type: 'string', minLength: 3 } },
        },
      },
    },
    failed: { type: 'boolean' },
    skipped: { type: 'boolean' },
    lateSeconds: { type: 'integer', minimum: 1 },
    overrunSeconds: { type: 'integer', minimum: 1 },
    deadlineSeconds: {
      type: 'integer',
      minimum: 1,
      description:
        'Alert when a run is not FINISHED this many seconds after its instant (not for triggers or backfills)',
    },
  },
  examples: [
    {
      channel: { webhook: { url: 'https://hooks.example.com/t', secret: { $secret: 'HOOK' } } },
      failed: true,
    },
  ],
} as const;

/** Whether a schedule's alerts ask for alerts of this kind. */
export function wantsAlert(a: AlertsOption | undefined, kind: AlertKind): boolean {
  if (!a) return false;
  switch (kind) {
    case 'failed':
      return a.failed ?? true;
    case 'skipped':
    case 'missed':
      return a.skipped ?? false;
    case 'late':
      return a.lateSeconds !== undefined;
    case 'overrun':
      return a.overrunSeconds !== undefined;
    case 'deadline':
      return a.deadlineSeconds !== undefined;
  }
}

/** The alerts a task message carries for the consumer: without `deadlineSeconds`, which only the scheduler acts on. */
export function consumerAlerts(a: AlertsOption | undefined): AlertsOption | undefined {
  if (a?.deadlineSeconds === undefined) return a;
  const { deadlineSeconds: _, ...rest } = a;
  return rest;
}

/** An alert about one run of a schedule. */
export interface Alert {
  kind: AlertKind;
  scheduleId: string;
  /** The run it is about. */
  taskId: string;
  /** The run's instant (its `scheduledFor`). */
  scheduledFor: string;
  reason: string;
  /** When it was raised. */
  at: string;
  group?: string;
}

/** `alert/<scheduleId>/<kind>@<instant>`: the same for every raise of one alert, so a re-raise is recognisable. */
export function alertTaskId(a: Pick<Alert, 'kind' | 'scheduleId' | 'scheduledFor'>): string {
  return `alert/${a.scheduleId}/${a.kind}@${a.scheduledFor}`;
}

/** The schedule Id of an alert's delivery task: a lane of its own, never behind the run it is about. */
export function alertScheduleId(scheduleId: string): string {
  return `alert/${scheduleId}`;
}

/** The JSON body an alert is delivered with (webhook): `{ kind, scheduleId, taskId, reason, at, group? }`. */
export function alertBody(a: Alert): Record<string, unknown> {
  return {
    kind: a.kind,
    scheduleId: a.scheduleId,
    taskId: a.taskId,
    reason: a.reason,
    at: a.at,
    ...(a.group === undefined ? {} : { group: a.group }),
  };
}

/** One line for people: `taskmanager alert: failed of nightly (nightly@…): reason`. */
export function alertText(a: Alert): string {
  return `taskmanager alert: ${a.kind} of ${a.scheduleId} (${a.taskId}): ${a.reason}`;
}

/** The processor and payload that deliver an alert through its channel. */
export function alertDelivery(a: Alert, channel: AlertChannel): { processor: string; payload: unknown } {
  if ('email' in channel)
    return {
      processor: 'email',
      payload: { to: channel.email.to, subject: alertText(a), text: JSON.stringify(alertBody(a), null, 2) },
    };
  const w = channel.webhook;
  return {
    processor: 'webhook',
    payload: {
      url: w.url,
      method: 'POST',
      body: w.slack ? { text: alertText(a) } : alertBody(a),
      ...(w.secret ? { sign: { secret: w.secret } } : {}),
    },
  };
}
