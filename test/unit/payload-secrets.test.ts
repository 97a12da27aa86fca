import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TaskRunner } from '../../src/consumer/task-runner.js';
import { ProcessorRegistry } from '../../src/processors/registry.js';
import type { Processor } from '../../src/processors/types.js';
import { systemClock } from '../../src/shared/clock.js';
import { NonRetriableError, RetriableError } from '../../src/shared/errors.js';
import { BatchingSender } from '../../src/shared/kafka/index.js';
import type { InRecord, OutRecord } from '../../src/shared/kafka/index.js';
import type { KafkaProducer } from '../../src/shared/kafka/client.js';
import { silentLogger } from '../../src/shared/logger.js';
import { encodeTaskMessage } from '../../src/shared/codecs/task-message.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const TOKEN = 'tk-7f3a9c-very-secret';
const HOOK = 'https://hooks.example.com/services/T000/B000/XyZsecretpath';

/** A processor that records the payload it got and answers as `answer` says (echoing what it was given). */
function echoing(answer: (payload: Record<string, string>) => unknown): {
  processor: Processor;
  seen: unknown[];
} {
  const seen: unknown[] = [];
  return {
    seen,
    processor: {
      name: 'Echo',
      process: async (task) => {
        seen.push(task.payload);
        const out = answer(task.payload as Record<string, string>);
        if (out instanceof Error) throw out;
        return out as { details: Record<string, unknown> };
      },
    },
  };
}

/** Runs one task through a real TaskRunner; what it wrote to Kafka (events, DLQ), as text and parsed. */
async function run(
  processor: Processor,
  payload: unknown,
  o: { maxAttempts?: number; secrets?: unknown } = {},
): Promise<{ written: string; records: OutRecord[]; events: Array<Record<string, unknown>> }> {
  const records: OutRecord[] = [];
  const sender = new BatchingSender({
    send: async (rs: readonly OutRecord[]) => void records.push(...rs),
  } as unknown as KafkaProducer);
  const runner = new TaskRunner({
    registry: new ProcessorRegistry([processor]),
    sender,
    clock: systemClock,
    backoff: { baseMs: 1, maxMs: 1 },
    logger: silentLogger,
    origin: { host: 'test', pid: 1 },
    maxAttempts: o.maxAttempts ?? 1,
    taskTimeoutMs: 0,
    ...(o.secrets ? { secrets: o.secrets as never } : {}),
  });
  const task: TaskMessage = {
    v: 1,
    taskId: 'hook@2026-11-25T08:00:00.000Z',
    scheduleId: 'hook',
    processor: 'Echo',
    payload,
    scheduledFor: '2026-11-25T08:00:00.000Z',
    firedAt: '2026-11-25T08:00:00.000Z',
    scheduler: { group: 'g', host: 'h', pid: 1 },
  };
  const rec: InRecord = {
    topic: 'tasks',
    partition: 0,
    offset: '7',
    key: Buffer.from('hook'),
    value: Buffer.from(encodeTaskMessage(task)),
    headers: { 'task-id': task.taskId },
    timestamp: '0',
  };
  expect(await runner.run(rec, new AbortController().signal)).toBe('done');
  await new Promise((r) => setImmediate(r));
  const written = records
    .map((r) => `${r.topic} ${JSON.stringify(r.headers)} ${r.value?.toString() ?? ''}`)
    .join('\n');
  const events = records
    .filter((r) => r.topic === 'taskmanager.events')
    .map((r) => JSON.parse(r.value!.toString()) as Record<string, unknown>);
  return { written, records, events };
}

const saved = { ...process.env };
beforeEach(() => {
  process.env.TASKMANAGER_SECRET_HOOK_TOKEN = TOKEN;
  process.env.TASKMANAGER_SECRET_HOOK_URL = HOOK;
  process.env.PLAIN_ENV_SECRET = 'not-for-tasks';
});
afterEach(() => {
  for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
});

describe('when a payload holds {"$secret": NAME} references', () => {
  const payload = {
    url: { $secret: 'HOOK_URL' },
    headers: { Authorization: { $secret: 'HOOK_TOKEN' }, 'X-Other': 'plain' },
    list: [{ again: { $secret: 'HOOK_TOKEN' } }],
  };

  it('should hand the processor the values from TASKMANAGER_SECRET_<NAME>, at any depth', async () => {
    const echo = echoing(() => ({ details: {} }));
    await run(echo.processor, payload);
    expect(echo.seen).toEqual([
      { url: HOOK, headers: { Authorization: TOKEN, 'X-Other': 'plain' }, list: [{ again: TOKEN }] },
    ]);
  });

  it('should keep the values out of the FINISHED result, even when the processor echoes them', async () => {
    const echo = echoing((p) => ({
      details: {
        request: `POST ${new URL(p.url!).origin}${new URL(p.url!).pathname}`,
        echoed: { auth: `Bearer ${(p.headers as unknown as Record<string, string>).Authorization}` },
        encoded: encodeURIComponent(HOOK),
      },
    }));
    const { written, events } = await run(echo.processor, payload);
    expect(written).not.toContain(TOKEN);
    expect(written).not.toContain('XyZsecretpath');
    expect(events.find((e) => e.status === 'FINISHED')?.result).toEqual({
      request: 'POST [redacted]',
      echoed: { auth: 'Bearer [redacted]' },
      encoded: '[redacted]',
    });
  });

  it('should keep them out of retried and final errors, their details and the DLQ, which keeps the references', async () => {
    let attempt = 0;
    const echo = echoing((p) => {
      const auth = (p.headers as unknown as Record<string, string>).Authorization;
      const details = { details: { sent: auth, url: p.url } };
      return ++attempt === 1
        ? new RetriableError(`503 for token ${auth}`, details)
        : new NonRetriableError(`401 for ${p.url} with ${auth}`, details);
    });
    const { written, records, events } = await run(echo.processor, payload, { maxAttempts: 3 });
    expect(written).not.toContain(TOKEN);
    expect(written).not.toContain(HOOK);
    expect(events.filter((e) => e.status === 'FAILED').map((e) => [e.error, e.result])).toEqual([
      ['503 for token [redacted]', { sent: '[redacted]', url: '[redacted]' }],
      ['401 for [redacted] with [redacted]', { sent: '[redacted]', url: '[redacted]' }],
    ]);
    const dlq = records.find((r) => r.topic === 'tasks.dlq')!;
    expect(dlq.headers!['dlq-error']).toBe('401 for [redacted] with [redacted]');
    expect((JSON.parse(dlq.value!.toString()) as TaskMessage).payload).toEqual(payload);
  });
});

describe('when a referenced secret is not set on the consumer', () => {
  it('should fail the task for good without running it, naming the secret and where it was looked for', async () => {
    const echo = echoing(() => ({ details: {} }));
    const { records, events } = await run(
      echo.processor,
      { a: { $secret: 'MISSING' }, b: { $secret: 'PLAIN_ENV_SECRET' } },
      { maxAttempts: 5 },
    );
    expect(echo.seen).toEqual([]);
    const final = events.find((e) => e.final);
    expect([final?.dlqReason, final?.attempt, final?.error]).toEqual([
      'non-retriable',
      1,
      'task hook@2026-11-25T08:00:00.000Z: secret MISSING (payload.a) is not set on this consumer: set TASKMANAGER_SECRET_MISSING in its environment',
    ]);
    expect(records.filter((r) => r.topic === 'tasks.dlq')).toHaveLength(1);
  });

  it('should not read a variable without the TASKMANAGER_SECRET_ prefix', async () => {
    const echo = echoing(() => ({ details: {} }));
    const { events, written } = await run(echo.processor, { b: { $secret: 'PLAIN_ENV_SECRET' } });
    expect(echo.seen).toEqual([]);
    expect(events.find((e) => e.final)?.error).toMatch(/secret PLAIN_ENV_SECRET \(payload.b\) is not set/);
    expect(written).not.toContain('not-for-tasks');
  });

  it('should refuse a malformed reference, saying how to write one', async () => {
    const echo = echoing(() => ({ details: {} }));
    for (const ref of [{ $secret: '../etc/passwd' }, { $secret: 7 }, { $secret: 'A', other: 1 }]) {
      const { events } = await run(echo.processor, { x: ref });
      expect(events.find((e) => e.final)?.error).toBe(
        'task hook@2026-11-25T08:00:00.000Z: payload.x is not a secret reference: write {"$secret": "NAME"}, NAME of letters, digits, _ . - (up to 128)',
      );
    }
    expect(echo.seen).toEqual([]);
  });
});

describe('when the consumer runs with --secrets-dir', () => {
  it('should read the file NAME there (one trailing newline dropped) when the environment has no such secret', async () => {
    const { SecretSource } = await import('../../src/consumer/secrets.js');
    const dir = mkdtempSync(join(tmpdir(), 'secrets-'));
    writeFileSync(join(dir, 'db-password'), 'from-a-file\n');
    const echo = echoing((p) => ({ details: { said: p.pw } }));
    const { events } = await run(
      echo.processor,
      { pw: { $secret: 'db-password' }, tok: { $secret: 'HOOK_TOKEN' } },
      { secrets: new SecretSource({ dir }) },
    );
    expect(echo.seen).toEqual([{ pw: 'from-a-file', tok: TOKEN }]);
    expect(events.find((e) => e.status === 'FINISHED')?.result).toEqual({ said: '[redacted]' });
    const missing = await run(
      echo.processor,
      { x: { $secret: 'nope' } },
      { secrets: new SecretSource({ dir }) },
    );
    expect(missing.events.find((e) => e.final)?.error).toBe(
      `task hook@2026-11-25T08:00:00.000Z: secret nope (payload.x) is not set on this consumer: set TASKMANAGER_SECRET_nope in its environment or the file ${join(dir, 'nope')}`,
    );
  });
});
