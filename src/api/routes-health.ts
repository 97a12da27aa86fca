import type { FastifyInstance } from 'fastify';
import type { Logger } from '../shared/logger.js';
import { ApiError } from './problem.js';
import { COMMON_ERRORS, json } from './route-schemas.js';

export interface HealthSource {
  health(): { ready: boolean; reason?: string };
  tasks(): number;
}

const READY_SCHEMA = {
  type: 'object',
  required: ['status', 'tasks'],
  properties: { status: { type: 'string' }, tasks: { type: 'integer' } },
} as const;

/** What the public readiness route says when not ready: never the reason, which names brokers and Kafka's errors. */
export const NOT_READY = 'not ready: taskapi is starting or cannot reach Kafka (the reason is in its log)';

/**
 * `/api/healthz` (the process answers) and `/api/readyz` (it can serve: view built, Kafka answering). Both are
 * public, so they say ready or not and nothing about the cluster; the reason goes to the log, once each time it
 * changes.
 */
export function registerHealthRoutes(app: FastifyInstance, source: HealthSource, logger: Logger): void {
  let logged: string | undefined;
  app.get(
    '/api/healthz',
    {
      config: { access: 'public' },
      schema: { tags: ['health'], security: [], response: { 200: json(READY_SCHEMA, 'Alive') } },
    },
    () => ({ status: 'ok', tasks: source.tasks() }),
  );
  app.get(
    '/api/readyz',
    {
      config: { access: 'public' },
      schema: {
        tags: ['health'],
        security: [],
        response: { 200: json(READY_SCHEMA, 'Ready'), 503: COMMON_ERRORS[503] },
      },
    },
    () => {
      const h = source.health();
      if (!h.ready) {
        const reason = h.reason ?? 'unknown';
        if (reason !== logged) logger.warn(`/api/readyz answers 503: ${reason}`);
        logged = reason;
        throw new ApiError(503, NOT_READY);
      }
      if (logged !== undefined) logger.info('/api/readyz answers 200 again');
      logged = undefined;
      return { status: 'ready', tasks: source.tasks() };
    },
  );
}
