import { Ajv } from 'ajv';
import { hostname } from 'node:os';
import type { OutRecord } from '../kafka/types.js';
import type { Origin } from '../messages.js';
import { parseValidJson } from '../messages.js';

/**
 * Requests to cancel one task (one run, by taskId), on `taskmanager.cancels`
 * (docs/messages-and-topics.md#cancel-requests): written by taskapi and `taskconsumer cancel`, read from the
 * beginning by every task consumer, so the consumer that holds the task, now or after a rebalance or a restart, sees
 * the request.
 */
export const CANCELS_TOPIC = 'taskmanager.cancels';

export interface CancelRequest {
  v: 1;
  taskId: string;
  at: string;
  /**
   * Who asked: a taskapi user (`role: 'api'`) or an operator's `taskconsumer cancel` (`role: 'operator'`). A consumer
   * cancelling a run replaced under the overlap policy `replace` makes one of its own (`role: 'consumer'`), never
   * written to the topic.
   */
  by: Origin & { role: 'api' | 'operator' | 'consumer'; user?: string };
  /** Why, in the requester's words. */
  reason?: string;
}

/** Longest reason kept (a longer one is cut): it ends up in events, logs and the dashboard. */
export const MAX_CANCEL_REASON = 500;

/** The request's record: key and header `task-id` = the taskId (a second request for it replaces the first). */
export function cancelRecord(req: CancelRequest): OutRecord {
  return {
    topic: CANCELS_TOPIC,
    key: req.taskId,
    value: JSON.stringify(req),
    headers: { 'task-id': req.taskId },
  };
}

/** A request made now by this process (`user`: the taskapi user who asked). */
export function cancelRequest(
  taskId: string,
  at: Date,
  role: CancelRequest['by']['role'],
  options: { user?: string; reason?: string } = {},
): CancelRequest {
  const reason = options.reason?.trim().slice(0, MAX_CANCEL_REASON);
  return {
    v: 1,
    taskId,
    at: at.toISOString(),
    by: { host: hostname(), pid: process.pid, role, ...(options.user ? { user: options.user } : {}) },
    ...(reason ? { reason } : {}),
  };
}

/** `cancelled by alice (api): wrong customer` — who asked and why, for events, logs and answers. */
export function describeCancel(req: CancelRequest): string {
  if (req.by.role === 'consumer' && req.reason) return req.reason;
  const who = req.by.user ? `${req.by.user} (${req.by.role})` : `${req.by.role} on ${req.by.host}`;
  return `cancelled by ${who}${req.reason ? `: ${req.reason}` : ''}`;
}

const schema = {
  type: 'object',
  required: ['v', 'taskId', 'at', 'by'],
  properties: {
    v: { type: 'integer', const: 1 },
    taskId: { type: 'string', minLength: 1 },
    at: { type: 'string' },
    by: {
      type: 'object',
      required: ['host', 'pid', 'role'],
      properties: {
        host: { type: 'string' },
        pid: { type: 'integer' },
        role: { type: 'string', enum: ['api', 'operator'] },
        user: { type: 'string' },
      },
    },
    reason: { type: 'string', maxLength: MAX_CANCEL_REASON },
  },
} as const;

const isCancelRequest = new Ajv({ allErrors: true, strict: true }).compile<CancelRequest>(schema);

/** A `taskmanager.cancels` record value as a request; undefined for a tombstone or a value that is none. */
export function parseCancelRequest(value: Buffer | null): CancelRequest | undefined {
  return parseValidJson(value, isCancelRequest);
}
