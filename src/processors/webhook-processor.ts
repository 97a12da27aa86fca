import { createHmac } from 'node:crypto';
import { isIP } from 'node:net';
import { Agent, request } from 'undici';
import type { Dispatcher } from 'undici';
import { errorMessage, NonRetriableError, RetriableError } from '../shared/errors.js';
import type { Logger } from '../shared/logger.js';
import { AddressGuard, addressRefusalOf } from './address-guard.js';
import { payloadParser } from './payload.js';
import type { Processor, ProcessorResult } from './types.js';

export interface WebhookPayload {
  url: string;
  method?: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  headers?: Record<string, string>;
  body?: unknown;
  timeoutMs?: number;
  /**
   * Signs the request: the header (default `x-taskmanager-signature`) holds `sha256=<hex HMAC-SHA256 of the exact
   * body bytes>` keyed by `secret`, which is to be a `{"$secret": NAME}` reference (resolved by the consumer).
   */
  sign?: { secret: string; header?: string };
}

/** The header a signed webhook's signature goes in unless the payload names another. */
export const SIGNATURE_HEADER = 'x-taskmanager-signature';

/** `sha256=<hex>`: the HMAC-SHA256 of `body` (its UTF-8 bytes) keyed by `secret`, as the signature header holds it. */
export function webhookSignature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

const parse = payloadParser<WebhookPayload>('WebhookProcessor', {
  type: 'object',
  additionalProperties: false,
  required: ['url'],
  properties: {
    url: { type: 'string', pattern: '^https?://' },
    method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
    body: {},
    timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000 },
    sign: {
      type: 'object',
      additionalProperties: false,
      required: ['secret'],
      properties: {
        secret: { type: 'string', minLength: 1 },
        header: { type: 'string', pattern: '^[A-Za-z0-9-]{1,100}$' },
      },
    },
  },
});

/** How much of a response body goes into the event. */
const EXCERPT_BYTES = 2048;
const DEFAULT_TIMEOUT_MS = 30_000;

/** `Retry-After` as ms: delta-seconds or an HTTP date. */
export function retryAfterMs(value: string | string[] | undefined, nowMs: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (v === undefined) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - nowMs) : undefined;
}

async function excerpt(body: Dispatcher.ResponseData['body']): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of body) {
    const b = chunk as Buffer;
    if (size < EXCERPT_BYTES) chunks.push(b.subarray(0, EXCERPT_BYTES - size));
    size += b.length;
    if (size > EXCERPT_BYTES) {
      truncated = true;
      body.destroy();
      break;
    }
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated };
}

/**
 * The payload's headers without `Host`: the request goes to the URL's host and says so (a payload-given Host would
 * let a task reach a virtual host of a server the operator allowed for another name).
 */
function payloadHeaders(
  given: Record<string, string> | undefined,
  taskId: string,
  logger: Logger,
): Record<string, string> {
  const kept = Object.entries(given ?? {}).filter(([name]) => name.toLowerCase() !== 'host');
  if (kept.length !== Object.keys(given ?? {}).length)
    logger.warn(`webhook of task ${taskId}: the payload's Host header is ignored (the URL names the host)`);
  return Object.fromEntries(kept);
}

/**
 * `WebhookProcessor` (also `webhook`): one HTTP request per task. 2xx succeeds; 408, 429 (after its Retry-After),
 * 5xx and network errors are retried; other 4xx are not. The taskId goes in `Idempotency-Key`, so a retried or
 * re-delivered task can be recognised by the receiver. Internal addresses are refused unless `--webhook-allow`ed.
 */
export function webhookProcessor(o: { allow: readonly string[] }): Processor {
  const guard = new AddressGuard(o.allow);
  const agent = new Agent({ connect: { lookup: guard.lookup }, keepAliveTimeout: 10_000 });
  return {
    name: 'WebhookProcessor',
    aliases: ['webhook'],
    async process(task, ctx): Promise<ProcessorResult> {
      const p = parse(task);
      const url = new URL(p.url);
      const host = url.hostname.replace(/^\[|\]$/g, '');
      const method = p.method ?? (p.body === undefined ? 'GET' : 'POST');
      const json = p.body !== undefined && typeof p.body !== 'string';
      // The bytes sent are the bytes signed.
      const body = p.body === undefined ? undefined : json ? JSON.stringify(p.body) : (p.body as string);
      const headers: Record<string, string> = {
        'user-agent': 'taskmanager-webhook',
        ...(json ? { 'content-type': 'application/json' } : {}),
        ...payloadHeaders(p.headers, task.taskId, ctx.logger),
        'idempotency-key': task.taskId,
        ...(p.sign
          ? {
              [(p.sign.header ?? SIGNATURE_HEADER).toLowerCase()]: webhookSignature(
                p.sign.secret,
                body ?? '',
              ),
            }
          : {}),
      };
      const signal = AbortSignal.any([ctx.signal, AbortSignal.timeout(p.timeoutMs ?? DEFAULT_TIMEOUT_MS)]);
      let res: Dispatcher.ResponseData;
      try {
        // An address in the URL never goes through the lookup: check it here.
        if (isIP(host)) guard.check(host, host);
        res = await request(url, {
          method,
          headers,
          dispatcher: agent,
          signal,
          ...(body === undefined ? {} : { body }),
        });
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        // Refused by the guard (wrapped by the client when refused at the lookup). Its message, which viewers see,
        // names the host only; the address it resolved to is said here, in the consumer's log.
        const refused = addressRefusalOf(err);
        if (refused) {
          ctx.logger.warn(
            `webhook of task ${task.taskId} refused: ${refused.host} is at ${refused.address} (${refused.addressClass})`,
          );
          throw refused;
        }
        if (err instanceof NonRetriableError) throw err;
        throw new RetriableError(`${method} ${url.origin}${url.pathname}: ${errorMessage(err)}`, {
          details: { url: `${url.origin}${url.pathname}`, error: errorMessage(err) },
        });
      }
      const answer = await excerpt(res.body);
      const details = {
        status: res.statusCode,
        body: answer.text,
        ...(answer.truncated ? { truncated: true } : {}),
      };
      const what = `${method} ${url.origin}${url.pathname} answered ${res.statusCode}`;
      // The run log: the answer's status line, then the body's excerpt as it reads.
      ctx.output('response', `${what}${answer.truncated ? ' (body cut)' : ''}\n`);
      if (answer.text !== '')
        ctx.output('response', answer.text.endsWith('\n') ? answer.text : `${answer.text}\n`);
      if (res.statusCode >= 200 && res.statusCode < 300) return { details };
      if (res.statusCode === 408 || res.statusCode === 429 || res.statusCode >= 500) {
        const wait = retryAfterMs(res.headers['retry-after'], Date.now());
        throw new RetriableError(what, { details, ...(wait === undefined ? {} : { retryAfterMs: wait }) });
      }
      throw new NonRetriableError(`${what} (a 4xx other than 408 and 429 is not retried)`, { details });
    },
  };
}
