import { afterEach, expect } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from '../../../src/api/auth/authenticator.js';
import { LoginLimiter } from '../../../src/api/auth/login-limiter.js';
import type { LoginLimits } from '../../../src/api/auth/login-limiter.js';
import { derivedSecret, loadSigningKeys } from '../../../src/api/auth/signing-keys.js';
import { UserStore } from '../../../src/api/auth/user-store.js';
import { ClusterStatus } from '../../../src/api/cluster-status.js';
import { KafkaStore } from '../../../src/api/kafka-store.js';
import type { HealthSource } from '../../../src/api/routes-health.js';
import { buildServer } from '../../../src/api/server.js';
import type { ApiServerOptions } from '../../../src/api/server.js';
import { TaskService } from '../../../src/api/task-service.js';
import { CalendarService } from '../../../src/api/calendar-service.js';
import { AuditTrail } from '../../../src/api/audit-trail.js';
import { TaskStore } from '../../../src/api/task-store.js';
import { systemClock } from '../../../src/shared/clock.js';
import type { Clock } from '../../../src/shared/clock.js';
import { silentLogger } from '../../../src/shared/logger.js';
import type { Logger } from '../../../src/shared/logger.js';
import { MemoryKafka } from './memory-kafka.js';

export interface ApiApp {
  app: FastifyInstance;
  users: UserStore;
  /** Every record written, by topic (task topics, taskmanager.tasks, taskmanager.events…). */
  kafka: MemoryKafka;
  /** Logs in over HTTP: the answer's status and body. */
  login(username: string, password: string): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * taskapi's real fastify app (routes, guard, users and tokens, tasks, the DLQ and cluster pages) over topics kept in
 * {@link MemoryKafka}, for `inject`. `clock` drives the cluster pages' refreshes and the DLQ views' idle timers.
 * Two apps given the same `kafka` and `dataDir` are two instances of one deployment (one users topic, one signing key).
 */
export async function apiApp(
  o: Partial<
    Pick<ApiServerOptions, 'requestTimeoutMs' | 'idleTimeoutMs' | 'keepAliveTimeoutMs' | 'maxPayloadBytes'>
  > & {
    health?: HealthSource;
    logger?: Logger;
    clock?: Clock;
    kafka?: MemoryKafka;
    dataDir?: string;
    allowSignup?: boolean;
    loginLimits?: Partial<LoginLimits>;
  } = {},
): Promise<ApiApp> {
  const logger = o.logger ?? silentLogger;
  const kafka = o.kafka ?? new MemoryKafka();
  const store = new KafkaStore({ kafka: kafka.client(), logger, clock: systemClock });
  const users = new UserStore(store, systemClock, logger);
  const tasks = new TaskStore({ store, logger, clock: systemClock });
  const calendars = new CalendarService({ store, clock: systemClock, logger, tasks: () => tasks.view });
  await store.start([...tasks.topics(), ...users.topics(), ...calendars.topics()]);
  tasks.started();
  const keys = await loadSigningKeys(
    { dataDir: o.dataDir ?? mkdtempSync(join(tmpdir(), 'taskapi-keys-')), previousKeyFiles: [] },
    silentLogger,
  );
  const {
    health,
    logger: _logger,
    clock = systemClock,
    kafka: _kafka,
    dataDir: _dataDir,
    allowSignup = false,
    loginLimits,
    ...limits
  } = o;
  const limiter = new LoginLimiter({
    log: users.attemptLog(),
    clock: systemClock,
    logger,
    secret: derivedSecret(keys, 'login attempts'),
    ...(loginLimits ? { limits: loginLimits } : {}),
  });
  const cluster = new ClusterStatus({
    kafka: kafka.client(),
    view: tasks.view,
    rates: tasks.rates,
    clock,
    logger,
    calendarsOf: calendars.excludedOf,
  });
  const audit = new AuditTrail({
    kafka: kafka.client(),
    store,
    logger,
    clock,
    groupOf: (id) => tasks.view.get(id)?.def.group,
    alerts: tasks.alerts,
  });
  await audit.start();
  const app = await buildServer({
    service: new TaskService({
      tasks,
      store,
      logger,
      clock: systemClock,
      defaults: { topic: 'taskTopic', group: 'taskscheduler-api', timeZone: 'UTC' },
      taskTopics: ['taskTopic'],
      scheduler: cluster,
      calendars,
    }),
    calendars,
    kafka: kafka.client(),
    cluster,
    audit,
    alerts: tasks.alerts,
    clock,
    users: {
      users,
      auth: new Authenticator(users.view, keys, systemClock, 900),
      limiter,
      allowSignup,
    },
    health: health ?? { health: () => ({ ready: true }), tasks: () => 0 },
    logger,
    version: 'test',
    ...limits,
  });
  return {
    app,
    users,
    kafka,
    login: async (username, password) => {
      const r = await app.inject({
        method: 'POST',
        url: '/api/v1/users/login',
        payload: { username, password },
      });
      return { status: r.statusCode, body: r.json<Record<string, unknown>>() };
    },
    close: async () => {
      await app.close();
      await cluster.stop();
      await audit.stop();
      await store.stop();
    },
  };
}

/** Adds an operator `op` and a viewer `view` (straight to the users topic) and logs them in: their access tokens. */
export async function operatorAndViewer(api: ApiApp): Promise<[op: string, viewer: string]> {
  const password = 'a-long-enough-password';
  await api.users.addUser('op', password, 'operator', 'test');
  await api.users.addUser('view', password, 'viewer', 'test');
  const tokenOf = async (u: string) => (await api.login(u, password)).body.accessToken as string;
  return [await tokenOf('op'), await tokenOf('view')];
}

/** For a suite whose tests each open one {@link apiApp}: `open()` makes it, and it is closed after the test. */
export function apiAppPerTest(): { open(): Promise<ApiApp> } {
  let api: ApiApp | undefined;
  afterEach(async () => {
    await api?.close();
    api = undefined;
  });
  return { open: async () => (api = await apiApp()) };
}

/** Requests to `api` as the holder of a token: `call(token, method, url, payload?)`. */
export function callAs(api: ApiApp) {
  return (token: string, method: 'GET' | 'POST' | 'PATCH', url: string, payload?: object) =>
    api.app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(payload ? { payload } : {}),
    });
}

/** Creates the task `nightly` (processor `p`, `cron`) with `alerts` over HTTP, and checks taskapi kept them. */
export async function nightlyWithAlerts(
  api: ApiApp,
  token: string,
  alerts: object,
  cron: string,
): Promise<void> {
  const created = await callAs(api)(token, 'POST', '/api/v1/tasks', {
    id: 'nightly',
    processor: 'p',
    schedule: { cron },
    alerts,
  });
  expect(created.statusCode, created.body).toBe(201);
  expect(created.json<{ alerts?: unknown }>().alerts).toEqual(alerts);
}
