import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { retryUntilDone } from '../shared/backoff.js';
import { systemClock } from '../shared/clock.js';
import { AppError, errorMessage } from '../shared/errors.js';
import { connectKafka } from '../shared/cli-common.js';
import type { KafkaCliOptions } from '../shared/cli-common.js';
import { installShutdown } from '../shared/lifecycle.js';
import type { Logger } from '../shared/logger.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import { MetricsEndpoint } from '../shared/cli-runner.js';
import { Authenticator } from './auth/authenticator.js';
import { checkedPassword } from './auth/passwords.js';
import { LoginLimiter } from './auth/login-limiter.js';
import { derivedSecret, loadSigningKeys } from './auth/signing-keys.js';
import type { SigningKeys } from './auth/signing-keys.js';
import { UserStore } from './auth/user-store.js';
import { ClusterStatus } from './cluster-status.js';
import { KafkaStore, RepairSweeper, requireTopics } from './kafka-store.js';
import { apiMetrics } from './metrics.js';
import type { UserRoutesOptions } from './routes-users.js';
import { buildServer } from './server.js';
import { TaskService } from './task-service.js';
import { CalendarService } from './calendar-service.js';
import { AuditTrail } from './audit-trail.js';
import { TaskStore } from './task-store.js';
import { RunLogIndex } from './run-logs.js';
import { openTaskStore } from './task-store-dir.js';
import { TASKS_TOPIC } from '../shared/tasks/definition.js';
import { createTracing } from '../shared/tracing.js';
import type { Tracing } from '../shared/tracing.js';

export interface ServeOptions extends KafkaCliOptions {
  port: number;
  host: string;
  group: string;
  topic: string;
  /** The topics tasks may go to: `--task-topics` with `--topic` (see allowedTaskTopics). */
  taskTopics: readonly string[];
  timeZone: string;
  bodyLimit: number;
  /** Largest task payload, bytes of its JSON. */
  maxPayload: number;
  /** ms; see ApiServerOptions. */
  requestTimeout: number;
  idleTimeout: number;
  keepAliveTimeout: number;
  history: number;
  /** How long a one-shot task stays after its run ended, ms. */
  keepFinished: number;
  dataDir: string;
  jwtKeyFile?: string;
  jwtPreviousKeyFile: string[];
  tokenTtl: number;
  allowSignup: boolean;
  trustProxy: boolean | number | string;
  metricsPort?: number;
  metricsHost: string;
  /** Newest audit entries kept in memory (GET /api/v1/audit). */
  auditKeep: number;
  /** `--otel-endpoint`: spans of creates and triggers (docs/operations.md#traces). */
  otelEndpoint?: string;
}

function packageVersion(): string {
  for (const rel of ['../../../package.json', '../../package.json'])
    try {
      return (JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // not at this depth (dist/src/api or src/api)
    }
  return '0.0.0';
}

/** Kafka may be starting too (compose, CI): keep trying (0.5 s doubling to 5 s), saying why, until it answers. */
export function startWithRetry<T>(logger: Logger, start: () => Promise<T>): Promise<T> {
  return retryUntilDone(start, {
    backoff: { baseMs: 500, maxMs: 5000 },
    clock: systemClock,
    onFailure: (err, _attempt, waitMs) => {
      // A missing topic is the operator's to create: exit 2 at once instead of waiting for it.
      if (err instanceof AppError && err.code === 'TOPIC_MISSING') throw new AppError('USAGE', err.message);
      logger.warn(`cannot start yet (${errorMessage(err)}); retrying in ${waitMs} ms`);
    },
  });
}

/** The first admin's name and password from TASKAPI_ADMIN_USER / TASKAPI_ADMIN_PASSWORD (refused when too short). */
export function firstAdminFromEnv(
  env: NodeJS.ProcessEnv = process.env,
): { name: string; password: string } | undefined {
  const name = env.TASKAPI_ADMIN_USER;
  const password = env.TASKAPI_ADMIN_PASSWORD;
  if (!name || !password) return undefined;
  return { name, password: checkedPassword(password, 'TASKAPI_ADMIN_PASSWORD') };
}

/**
 * The first admin, when the users topic has none yet. Its password was in taskapi's environment (a compose file, a
 * deployment's settings), so it must be changed at the first login before anything else.
 */
export async function ensureFirstAdmin(
  users: UserStore,
  admin: { name: string; password: string } | undefined,
  logger: Logger,
): Promise<void> {
  if (users.view.admins() > 0) return;
  if (!admin) {
    logger.warn(
      'no admin user yet: every route but login and health answers 401; create one with `taskapi users add NAME --role admin` or TASKAPI_ADMIN_USER and TASKAPI_ADMIN_PASSWORD',
    );
    return;
  }
  try {
    await users.addUser(admin.name, admin.password, 'admin', 'env:TASKAPI_ADMIN_USER', {
      mustChangePassword: true,
    });
    logger.info(
      `created the first admin ${admin.name} (from TASKAPI_ADMIN_USER); it must change its password at the first login`,
    );
  } catch (err) {
    // Another instance starting at the same time created it first.
    if (!users.view.user(admin.name)) throw err;
  }
}

/** The views taskapi answers from, folded from their topics. */
interface Views {
  tasks: TaskStore;
  users: UserStore;
  calendars: CalendarService;
  /** Writes what the task store has staged and lets go of its folder. */
  closeDefs(): Promise<void>;
}

/**
 * Fresh views for every attempt: a failed one may have folded part of the topics (what its task store wrote is
 * consistent with its checkpoint, so the next attempt goes on from there).
 */
async function startViews(
  kafka: KafkaClient,
  store: KafkaStore,
  o: ServeOptions,
  logger: Logger,
): Promise<Views> {
  await requireTopics(kafka, [TASKS_TOPIC]);
  const layout = await kafka.topicLayout(TASKS_TOPIC);
  const opened = await openTaskStore(o.dataDir, layout, logger, Date.now());
  try {
    const tasks = new TaskStore({
      store,
      logger,
      clock: systemClock,
      historyMs: o.history,
      keepFinishedMs: o.keepFinished,
      defs: opened.defs,
      from: opened.from,
      ...(layout.deleteRetentionMs === undefined ? {} : { deleteRetentionMs: layout.deleteRetentionMs }),
    });
    const users = new UserStore(store, systemClock, logger);
    const calendars = new CalendarService({ store, clock: systemClock, logger, tasks: () => tasks.view });
    const ms = await store.start([...tasks.topics(), ...users.topics(), ...calendars.topics()]);
    tasks.started();
    for (const key of [...users.view.unrepaired]) void users.repair(key).catch(() => undefined);
    logger.info(
      `view rebuilt from taskmanager.tasks, taskmanager.events, taskmanager.users and taskmanager.calendars: ${tasks.view.size} task(s), ${users.view.allUsers().length} user(s), ${calendars.book.size} calendar(s) in ${Math.round(ms)} ms; ${tasks.view.recordsRead} record(s) of taskmanager.tasks read, ${opened.how}`,
    );
    return { tasks, users, calendars, closeDefs: () => opened.defs.close().finally(opened.release) };
  } catch (err) {
    await opened.defs.close().catch(() => undefined);
    opened.release();
    throw err;
  }
}

/** What serve runs once the views are up, in the order it stops them. */
interface Running {
  app: FastifyInstance;
  cluster: ClusterStatus;
  sweeper: RepairSweeper;
  limiter: LoginLimiter;
  store: KafkaStore;
  closeDefs(): Promise<void>;
  ops: MetricsEndpoint;
  tasks: TaskStore;
  audit: AuditTrail;
  logs: RunLogIndex;
  tracing: Tracing;
}

/** Logins, passwords and tokens over the users view: the login limits (started) and the authenticator. */
function startAuth(o: ServeOptions, users: UserStore, keys: SigningKeys, logger: Logger): UserRoutesOptions {
  const limiter = new LoginLimiter({
    log: users.attemptLog(),
    clock: systemClock,
    logger,
    secret: derivedSecret(keys, 'login attempts'),
  });
  limiter.start();
  const auth = new Authenticator(users.view, keys, systemClock, Math.round(o.tokenTtl / 1000));
  return { users, auth, limiter, allowSignup: o.allowSignup };
}

/** The HTTP app over the views, with the parts it needs (task service, login limits, cluster status, metrics). */
async function startApp(
  o: ServeOptions,
  logger: Logger,
  kafka: KafkaClient,
  store: KafkaStore,
  { tasks, users, calendars, closeDefs }: Views,
  keys: SigningKeys,
): Promise<Running> {
  const sweeper = new RepairSweeper([
    { unrepaired: tasks.view.unrepaired, repair: (k) => tasks.repair(k) },
    { unrepaired: users.view.unrepaired, repair: (k) => users.repair(k) },
  ]);
  const auth = startAuth(o, users, keys, logger);
  const health = { health: () => store.health(), tasks: () => tasks.view.size };
  const ops = new MetricsEndpoint(o, 'taskapi');
  const onResponse = ops.registry
    ? apiMetrics(ops.registry, { tasks: health.tasks, ready: () => store.health().ready })
    : undefined;
  const cluster = new ClusterStatus({
    kafka,
    view: tasks.view,
    rates: tasks.rates,
    clock: systemClock,
    logger,
    calendarsOf: calendars.excludedOf,
  });
  const audit = new AuditTrail({
    kafka,
    store,
    logger,
    clock: systemClock,
    keep: o.auditKeep,
    groupOf: (id) => tasks.view.get(id)?.def.group,
    alerts: tasks.alerts,
  });
  // Off the start-up path: the routes answer from what it has read so far (status `reading` until it caught up).
  void audit.start();
  const logs = new RunLogIndex({ kafka, logger, clock: systemClock, historyMs: o.history });
  // Not waited for: taskapi answers while it reads (the logs routes say so), and starts without the topic.
  void logs.start();
  const tracing = createTracing({
    endpoint: o.otelEndpoint,
    service: 'taskapi',
    version: packageVersion(),
    logger,
  });
  const service = new TaskService({
    tracing,
    tasks,
    store,
    logger,
    clock: systemClock,
    defaults: { topic: o.topic, group: o.group, timeZone: o.timeZone },
    taskTopics: o.taskTopics,
    scheduler: cluster,
    calendars,
    logs,
  });
  const app = await buildServer({
    service,
    calendars,
    kafka,
    cluster,
    audit,
    alerts: tasks.alerts,
    users: auth,
    health,
    logger,
    bodyLimit: o.bodyLimit,
    maxPayloadBytes: o.maxPayload,
    requestTimeoutMs: o.requestTimeout,
    idleTimeoutMs: o.idleTimeout,
    keepAliveTimeoutMs: o.keepAliveTimeout,
    trustProxy: o.trustProxy,
    version: packageVersion(),
    ...(onResponse ? { onResponse } : {}),
  });
  return { app, cluster, sweeper, limiter: auth.limiter, store, closeDefs, ops, tasks, audit, logs, tracing };
}

/** The HTTP server first (no new requests), then the parts it used, the store, and the metrics endpoint last. */
function installStop(r: Running, logger: Logger): void {
  installShutdown({
    logger,
    graceful: async () => {
      await r.app.close();
      await r.cluster.stop();
      await r.audit.stop();
      await r.logs.stop();
      r.sweeper.stop();
      r.limiter.stop();
      r.tasks.stop();
      await r.tracing.shutdown();
      await r.store.stop();
      await r.closeDefs();
      await r.ops.close();
      return 0;
    },
  });
}

/** `taskapi` (run): the HTTP server over Kafka. */
export async function serve(o: ServeOptions, logger: Logger): Promise<void> {
  // Before Kafka: a password that would be refused must not wait for the broker to say so.
  const firstAdmin = firstAdminFromEnv();
  const kafka = await connectKafka(o, logger, `taskapi-${process.pid}`);
  const store = new KafkaStore({ kafka, logger, clock: systemClock });
  const keys = await loadSigningKeys(
    {
      dataDir: o.dataDir,
      previousKeyFiles: o.jwtPreviousKeyFile,
      ...(o.jwtKeyFile ? { keyFile: o.jwtKeyFile } : {}),
    },
    logger,
  );
  const views = await startWithRetry(logger, () => startViews(kafka, store, o, logger));
  await ensureFirstAdmin(views.users, firstAdmin, logger);
  const running = await startApp(o, logger, kafka, store, views, keys);
  await running.ops.start(() => {
    const h = store.health();
    return { ready: h.ready, reason: h.reason ?? 'ready' };
  }, logger);
  installStop(running, logger);
  const address = await running.app.listen({ port: o.port, host: o.host });
  logger.info(
    `taskapi listening on ${address}/api/v1/tasks (OpenAPI: ${address}/api/openapi.json); new tasks go to group ${o.group}, topic ${o.topic} (task topics allowed: ${o.taskTopics.join(', ')})`,
  );
}
