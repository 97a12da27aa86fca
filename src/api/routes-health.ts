import type { FastifyInstance } from 'fastify';
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

/** `/api/healthz` (the process answers) and `/api/readyz` (it can serve: view built, Kafka answering). */
export function registerHealthRoutes(app: FastifyInstance, source: HealthSource): void {
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
      if (!h.ready) throw new ApiError(503, `not ready: ${h.reason ?? 'unknown'}`);
      return { status: 'ready', tasks: source.tasks() };
    },
  );
}
