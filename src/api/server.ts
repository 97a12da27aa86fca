import Fastify from 'fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import swagger from '@fastify/swagger';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { paramsAjv } from './route-schemas.js';
import { errorMessage } from '../shared/errors.js';
import { systemClock } from '../shared/clock.js';
import type { Clock } from '../shared/clock.js';
import type { Logger } from '../shared/logger.js';
import { ApiError, PROBLEM_CONTENT_TYPE, problemOf } from './problem.js';
import { fieldErrors } from './task-input.js';
import type { FieldError } from './task-input.js';
import { registerHealthRoutes } from './routes-health.js';
import type { HealthSource } from './routes-health.js';
import { registerLegacyRoutes } from './routes-legacy.js';
import { registerTaskRoutes } from './routes-tasks.js';
import { registerUserRoutes } from './routes-users.js';
import { registerTokenRoutes } from './routes-tokens.js';
import { registerDlqRoutes } from './routes-dlq.js';
import { registerClusterRoutes } from './routes-cluster.js';
import type { ClusterStatus } from './cluster-status.js';
import { registerUiRoutes } from './routes-ui.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import type { UserRoutesOptions } from './routes-users.js';
import { installGuard } from './auth/guard.js';
import type { TaskService } from './task-service.js';
import { registerCalendarRoutes } from './routes-calendars.js';
import type { CalendarService } from './calendar-service.js';
import type { AuditTrail } from './audit-trail.js';
import { registerAuditRoutes } from './routes-audit.js';
import { registerAlertRoutes } from './routes-alerts.js';
import type { AlertBook } from './alert-book.js';
import { auditStamp, dlqAuditRecord, scheduleAuditRecord } from '../shared/codecs/task-event.js';

export interface ApiServerOptions {
  service: TaskService;
  /** `/api/v1/calendars` (absent: no calendar routes). */
  calendars?: CalendarService;
  /** For the DLQ routes (they read and replay `<topic>.dlq` as `taskconsumer dlq` does). */
  kafka: KafkaClient;
  /** For the dashboard's overview and health pages. */
  cluster: ClusterStatus;
  /** `GET /api/v1/audit`, and the audit events of schedule actions and DLQ replays. */
  audit: AuditTrail;
  /** `GET /api/v1/alerts` and their acknowledgement; none without it. */
  alerts?: AlertBook;
  users: UserRoutesOptions;
  health: HealthSource;
  logger: Logger;
  /** Largest request body, bytes (413 above). @default 524288 */
  bodyLimit?: number;
  /** Largest task payload, bytes of its JSON, on create and change (413 above). @default 65536 */
  maxPayloadBytes?: number;
  /** For the DLQ views (idle DLQs stop being followed). @default systemClock */
  clock?: Clock;
  /**
   * Time a client has to send a whole request, headers and body, ms: a slow sender (slowloris) gets 408 and the
   * connection closed instead of holding it forever. @default 30000
   */
  requestTimeoutMs?: number;
  /** A connection on which nothing moves either way for this long is closed (a client that stops reading). @default 60000 */
  idleTimeoutMs?: number;
  /**
   * An idle keep-alive connection is closed after this, ms. Above the 60 s idle timeout of common load balancers, so
   * they never reuse a connection taskapi is closing. @default 72000
   */
  keepAliveTimeoutMs?: number;
  /**
   * Whose X-Forwarded-For to believe for the client address (login limits): fastify's `trustProxy` (true, a hop
   * count, or addresses/CIDRs). @default false: the peer address
   */
  trustProxy?: boolean | number | string;
  /** Called with each answered request (metrics). */
  onResponse?: (route: string, method: string, status: number, seconds: number) => void;
  version: string;
}

/**
 * Sent with every answer, the dashboard's pages and the API's JSON alike: scripts, styles and data come from this
 * origin only (the dashboard has no inline script or style, so no 'unsafe-inline'), no other site may frame a page
 * (clickjacking), browsers take each answer as the type it says, and no URL leaks to other sites as a referrer.
 */
export const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

/** The fastify app of `taskapi`: routes, request and response schemas, problem+json errors, the OpenAPI document. */
export async function buildServer(o: ApiServerOptions): Promise<FastifyInstance> {
  const app = createFastify(o);
  await app.register(swagger, { openapi: openApiInfo(o.version) });
  installAnswers(app, o.logger);
  if (o.onResponse) installOnResponse(app, o.onResponse);
  installGuard(app, o.users.auth);
  registerRoutes(app, o);
  app.get('/api/openapi.json', { config: { access: 'public' }, schema: { hide: true } }, () => app.swagger());
  await app.ready();
  return app;
}

/** Fastify with taskapi's limits and deadlines, JSON bodies only, and our validator for what is not a body. */
function createFastify(o: ApiServerOptions): FastifyInstance {
  const requestTimeout = o.requestTimeoutMs ?? 30_000;
  const app = Fastify({
    logger: false,
    bodyLimit: o.bodyLimit ?? 512 * 1024,
    requestTimeout,
    connectionTimeout: o.idleTimeoutMs ?? 60_000,
    keepAliveTimeout: o.keepAliveTimeoutMs ?? 72_000,
    // Node checks those deadlines every connectionsCheckingInterval (30 s by default): often enough that a slow
    // request ends within about a second of its deadline. Headers count against the same deadline as the body.
    http: {
      requestTimeout,
      headersTimeout: requestTimeout,
      connectionsCheckingInterval: Math.min(1000, requestTimeout),
    },
    // Task ids never contain '/', and a trailing slash is the same route.
    // Long path parameters reach the schemas (400 with the reason) instead of a bare 414 above fastify's 100 (a 249-character name percent-encoded can take 3000).
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 4096 },
    return503OnClosing: true,
    trustProxy: trustProxyOf(o.trustProxy ?? false),
  });
  app.setValidatorCompiler(({ schema }) => paramsAjv.compile(schema));
  // JSON only: text/plain bodies get 415, like every other type.
  app.removeContentTypeParser('text/plain');
  app.addContentTypeParser(
    'application/merge-patch+json',
    { parseAs: 'string' },
    app.getDefaultJsonParser('error', 'error'),
  );
  return app;
}

/** The head of the OpenAPI document: what taskapi is, how to authenticate, the tags in the order routes use them. */
function openApiInfo(version: string): FastifyDynamicSwaggerOptions['openapi'] {
  return {
    openapi: '3.1.0',
    info: {
      title: 'taskmanager taskapi',
      version,
      description:
        'Create, list, change, delete and trigger tasks stored in Kafka (taskmanager.tasks) and fired by taskscheduler. Errors are RFC 9457 problem+json.',
    },
    components: {
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'An access token from POST /api/v1/users/login (JWT) or an API token (tmk_…)',
        },
      },
    },
    security: [{ bearer: [] }],
    tags: [
      { name: 'tasks', description: 'Tasks' },
      {
        name: 'calendars',
        description: 'Exclusion calendars: dates on which the tasks naming them do not fire',
      },
      { name: 'users', description: 'Users, roles and tokens' },
      { name: 'dlq', description: 'Dead-lettered tasks and their replay' },
      { name: 'cluster', description: 'Schedules of every source, scheduler and consumer groups, rates' },
      { name: 'audit', description: 'Who did what when: the audit trail of taskmanager.audit' },
      {
        name: 'alerts',
        description:
          'Alerts of schedules (failed, skipped, missed, late, overrun runs, and runs past their deadline) and their acknowledgement',
      },
      { name: 'compat', description: 'Request bodies of the task services taskapi replaces' },
      { name: 'health', description: 'Liveness and readiness' },
    ],
  };
}

/** Every answer gets the security headers; every error, a route's or an unknown path's, is a problem document. */
function installAnswers(app: FastifyInstance, logger: Logger): void {
  app.addHook('onSend', (_req, reply, payload, done) => {
    void reply.headers(SECURITY_HEADERS);
    done(null, payload);
  });
  app.setNotFoundHandler((req, reply) =>
    sendProblem(reply, problemOf(404, `no route ${req.method} ${req.url.split('?')[0]}`, req.url)),
  );
  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    const { status, detail, errors } = describeError(err);
    if (status >= 500 && !(err instanceof ApiError))
      logger.error(`${req.method} ${req.url} failed: ${errorMessage(err)}`);
    if (err instanceof ApiError)
      for (const [k, v] of Object.entries(err.headers ?? {})) void reply.header(k, v);
    if (status === 401) void reply.header('www-authenticate', 'Bearer realm="taskapi"');
    return sendProblem(reply, problemOf(status, detail, req.url, errors));
  });
}

function installOnResponse(
  app: FastifyInstance,
  onResponse: NonNullable<ApiServerOptions['onResponse']>,
): void {
  app.addHook('onResponse', (req: FastifyRequest, reply: FastifyReply, done) => {
    onResponse(req.routeOptions.url ?? 'unmatched', req.method, reply.statusCode, reply.elapsedTime / 1000);
    done();
  });
}

/** In this order: the OpenAPI document lists paths as they were registered. */
function registerRoutes(app: FastifyInstance, o: ApiServerOptions): void {
  const payloadLimit = o.maxPayloadBytes === undefined ? {} : { maxPayloadBytes: o.maxPayloadBytes };
  registerTaskRoutes(app, o.service, payloadLimit);
  if (o.calendars) registerCalendarRoutes(app, o.calendars);
  registerUserRoutes(app, o.users);
  registerTokenRoutes(app, o.users);
  registerUiRoutes(app);
  const now = () => (o.clock ?? systemClock).now();
  registerDlqRoutes(app, o.kafka, (what, user) => o.logger.info(`${what} by ${user}`), {
    ...(o.clock ? { clock: o.clock } : {}),
    onReplayed: async (dlq, entries, user) => {
      for (const { entry, taskId } of entries) {
        const schedule = taskId === undefined ? undefined : scheduleIdOf(taskId);
        const record = dlqAuditRecord({
          v: 1,
          kind: 'audit',
          action: 'dlq.replayed',
          dlq,
          entry,
          ...(taskId === undefined ? {} : { taskId }),
          ...(schedule ? { schedule } : {}),
          ...auditStamp(user, now()),
        });
        await o.audit.send(record, `dlq.replayed of ${dlq}/${entry}`);
      }
    },
  });
  registerClusterRoutes(app, o.cluster, {
    cancel: (scheduleId, taskId, reason, by) => o.service.requestCancel(scheduleId, taskId, reason, by),
    logs: (scheduleId, taskId) => o.service.runLogOf(scheduleId, taskId),
    audit: (action, ids, user) =>
      o.audit.send(
        scheduleAuditRecord({ v: 1, kind: 'audit', action, ...ids, ...auditStamp(user, now()) }),
        `${action} of schedule ${ids.group}/${ids.schedule}`,
      ),
  });
  registerAuditRoutes(app, o.audit);
  if (o.alerts)
    registerAlertRoutes(app, {
      book: o.alerts,
      write: (r) => o.audit.write(r),
      clock: o.clock ?? systemClock,
    });
  registerLegacyRoutes(app, o.service, payloadLimit);
  registerHealthRoutes(app, o.health, o.logger);
}

/** The schedule a taskId is a run of: `<schedule id>@<instant>`; undefined for one of another form. */
function scheduleIdOf(taskId: string): string | undefined {
  const at = taskId.lastIndexOf('@');
  return at > 0 ? taskId.slice(0, at) : undefined;
}

/** A hop count trusts that many proxies; a string lists addresses or CIDRs. */
function trustProxyOf(
  v: boolean | number | string,
): boolean | string[] | ((address: string, hop: number) => boolean) {
  if (typeof v === 'number') return (_address, hop) => hop < v;
  if (typeof v === 'string') return v.split(',').map((a) => a.trim());
  return v;
}

function sendProblem(reply: FastifyReply, p: ReturnType<typeof problemOf>): FastifyReply {
  return reply.code(p.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(p));
}

/** Every error a request can meet, as status + one line + the field errors. */
function describeError(err: FastifyError | ApiError): {
  status: number;
  detail: string;
  errors?: FieldError[];
} {
  if (err instanceof ApiError)
    return { status: err.status, detail: err.message, ...(err.errors ? { errors: err.errors } : {}) };
  if (err.validation) {
    const where = err.validationContext ?? 'request';
    const errors = fieldErrors(err.validation as Parameters<typeof fieldErrors>[0]).map((e) => ({
      pointer: e.pointer,
      detail: `${e.detail} (${where === 'querystring' ? 'query parameter' : where === 'params' ? 'path parameter' : where})`,
    }));
    return {
      status: 400,
      detail: `invalid ${where}: ${errors.map((e) => `${e.pointer} ${e.detail}`).join('; ')}`,
      errors,
    };
  }
  const status = err.statusCode ?? 500;
  if (status >= 400 && status < 500) {
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      return { status: 415, detail: `${err.message}: send the body as application/json` };
    return { status, detail: err.message };
  }
  return { status: 500, detail: 'internal error (logged by the server)' };
}
