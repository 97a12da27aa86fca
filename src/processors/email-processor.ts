import { hostname } from 'node:os';
import nodemailer from 'nodemailer';
import { errorMessage, NonRetriableError, RetriableError } from '../shared/errors.js';
import { payloadParser } from './payload.js';
import type { Processor, ProcessorResult } from './types.js';

/** The shape the task services we replace used: `subject` or `title`, `body` or `text`. */
export interface EmailPayload {
  to: string | string[];
  cc?: string | string[];
  bcc?: string | string[];
  from?: string;
  subject?: string;
  title?: string;
  body?: string;
  text?: string;
  html?: string;
}

const ADDRESSES = {
  anyOf: [
    { type: 'string', minLength: 3 },
    { type: 'array', minItems: 1, items: { type: 'string', minLength: 3 } },
  ],
} as const;

const parse = payloadParser<EmailPayload>('EmailProcessor', {
  type: 'object',
  additionalProperties: false,
  required: ['to'],
  anyOf: [{ required: ['subject'] }, { required: ['title'] }],
  properties: {
    to: ADDRESSES,
    cc: ADDRESSES,
    bcc: ADDRESSES,
    from: { type: 'string', minLength: 3 },
    subject: { type: 'string' },
    title: { type: 'string' },
    body: { type: 'string' },
    text: { type: 'string' },
    html: { type: 'string' },
  },
});

export interface EmailOptions {
  /** `smtp://user:pass@host:587`, `smtps://…` (nodemailer's URL form); none: every email task fails at once. */
  smtpUrl?: string;
  /** Sender when the payload has no `from`. @default taskmanager@<host name> */
  from?: string;
}

/** The SMTP reply code of a nodemailer error, when the server gave one. */
function replyCode(err: unknown): number | undefined {
  const code = (err as { responseCode?: unknown }).responseCode;
  return typeof code === 'number' ? code : undefined;
}

/**
 * `EmailProcessor` (also `email`): one message per task through `--smtp-url`. A 4xx reply from the server
 * (greylisting, mailbox busy) and connection failures are retried; a 5xx reply (no such user, refused) is not.
 * The message id goes in the FINISHED event.
 */
export function emailProcessor(o: EmailOptions): Processor {
  const transport = o.smtpUrl ? nodemailer.createTransport(o.smtpUrl) : undefined;
  const defaultFrom = o.from ?? `taskmanager@${hostname()}`;
  return {
    name: 'EmailProcessor',
    aliases: ['email'],
    async process(task, ctx): Promise<ProcessorResult> {
      const p = parse(task);
      if (!transport)
        throw new NonRetriableError(
          'EmailProcessor: no SMTP server: start taskconsumer with --smtp-url (or SMTP_URL)',
        );
      const send = transport.sendMail({
        from: p.from ?? defaultFrom,
        to: p.to,
        ...(p.cc ? { cc: p.cc } : {}),
        ...(p.bcc ? { bcc: p.bcc } : {}),
        subject: p.subject ?? p.title ?? '',
        ...((p.text ?? p.body) === undefined ? {} : { text: p.text ?? p.body }),
        ...(p.html === undefined ? {} : { html: p.html }),
        headers: { 'X-Task-Id': task.taskId },
      });
      const aborted = new Promise<never>((_, reject) => {
        if (ctx.signal.aborted) reject(ctx.signal.reason);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      });
      try {
        const info = await Promise.race([send, aborted]);
        return {
          details: {
            messageId: info.messageId,
            accepted: info.accepted.map(String),
            rejected: info.rejected.map(String),
            response: info.response,
          },
        };
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        const code = replyCode(err);
        const details = { ...(code === undefined ? {} : { smtpCode: code }), error: errorMessage(err) };
        if (code !== undefined && code >= 500)
          throw new NonRetriableError(`EmailProcessor: the server refused (${code}): ${errorMessage(err)}`, {
            details,
          });
        throw new RetriableError(`EmailProcessor: ${errorMessage(err)}`, { details });
      }
    },
  };
}
