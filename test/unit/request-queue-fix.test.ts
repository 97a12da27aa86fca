import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { fixIdleRequestQueueLoop } from '../../src/shared/kafka/kafkajs/request-queue-fix.js';

const require = createRequire(import.meta.url);
type Queue = {
  pending: unknown[];
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  scheduleCheckPendingRequests(): void;
};
const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as new (o: object) => Queue;
const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};
const queue = (): Queue =>
  new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 1000,
    clientId: 't',
    broker: 'b',
    logger: quiet,
  });

describe('kafkajs idle request-queue loop (kafkajs #1556)', () => {
  it('should arm no timer while nothing waits, and one while a request waits', () => {
    expect(fixIdleRequestQueueLoop()).toBe(true);
    const idle = queue();
    idle.scheduleCheckPendingRequests();
    expect(idle.throttleCheckTimeoutId).toBeNull();

    const busy = queue();
    busy.pending.push({});
    busy.scheduleCheckPendingRequests();
    expect(busy.throttleCheckTimeoutId).not.toBeNull();
    clearTimeout(busy.throttleCheckTimeoutId ?? undefined);
  });
});
