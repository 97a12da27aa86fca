import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { Authenticator } from '../../../src/api/auth/authenticator.js';
import { LoginLimiter } from '../../../src/api/auth/login-limiter.js';
import { loadSigningKeys } from '../../../src/api/auth/signing-keys.js';
import { UserStore } from '../../../src/api/auth/user-store.js';
import type { ClusterStatus } from '../../../src/api/cluster-status.js';
import { KafkaStore } from '../../../src/api/kafka-store.js';
import type { HealthSource } from '../../../src/api/routes-health.js';
import { buildServer } from '../../../src/api/server.js';
import type { ApiServerOptions } from '../../../src/api/server.js';
import type { TaskService } from '../../../src/api/task-service.js';
import { systemClock } from '../../../src/shared/clock.js';
import { silentLogger } from '../../../src/shared/logger.js';
import type { Logger } from '../../../src/shared/logger.js';
import { MemoryKafka } from './memory-kafka.js';

export interface ApiApp {
  app: FastifyInstance;
  users: UserStore;
  /** Logs in over HTTP: the answer's status and body. */
  login(username: string, password: string): Promise<{ status: number; body: Record<string, unknown> }>;
  close(): Promise<void>;
}

/**
 * taskapi's real fastify app (routes, guard, users and tokens) over users kept in {@link MemoryKafka}, for `inject`.
 * Tasks, the DLQ and the cluster pages are not wired: tests of those routes need the integration tier.
 */
export async function apiApp(
  o: Partial<Pick<ApiServerOptions, 'requestTimeoutMs' | 'idleTimeoutMs' | 'keepAliveTimeoutMs'>> & {
    health?: HealthSource;
    logger?: Logger;
  } = {},
): Promise<ApiApp> {
  const logger = o.logger ?? silentLogger;
  const kafka = new MemoryKafka();
  const store = new KafkaStore({ kafka: kafka.client(), logger, clock: systemClock });
  const users = new UserStore(store, systemClock, logger);
  await store.start(users.topics());
  const keys = await loadSigningKeys(
    { dataDir: mkdtempSync(join(tmpdir(), 'taskapi-keys-')), previousKeyFiles: [] },
    silentLogger,
  );
  const { health, logger: _logger, ...timeouts } = o;
  const app = await buildServer({
    service: {} as TaskService,
    kafka: kafka.client(),
    cluster: {} as ClusterStatus,
    users: {
      users,
      auth: new Authenticator(users.view, keys, systemClock, 900),
      limiter: new LoginLimiter(systemClock),
      allowSignup: false,
    },
    health: health ?? { health: () => ({ ready: true }), tasks: () => 0 },
    logger,
    version: 'test',
    ...timeouts,
  });
  return {
    app,
    users,
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
      await store.stop();
    },
  };
}
