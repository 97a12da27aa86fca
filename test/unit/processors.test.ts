import { describe, expect, it } from 'vitest';
import { ProcessorRegistry, lastSegment } from '../../src/processors/registry.js';
import { sleepProcessor } from '../../src/processors/sleep-processor.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const task = (payload: unknown): TaskMessage => ({
  v: 1,
  taskId: 'a@2026-11-22T10:00:00.000Z',
  scheduleId: 'a',
  processor: 'SleepProcessor',
  payload,
  scheduledFor: '2026-11-22T10:00:00.000Z',
  firedAt: '2026-11-22T10:00:00.000Z',
  scheduler: { group: 'g', host: 'h', pid: 1 },
});
const ctx = (signal: AbortSignal) => ({
  signal,
  logger: silentLogger,
  attempt: 1,
  source: { topic: 't', partition: 0, offset: '0' },
  progress: () => undefined,
  output: () => undefined,
});

describe('processor registry', () => {
  describe('when resolving names', () => {
    it('should find the Go type paths of the old tool by their last segment', () => {
      const r = new ProcessorRegistry();
      expect(r.resolve('github.com/darciopacifico/taskmanager/processor.InvoiceProcessor')?.name).toBe(
        'InvoiceProcessor',
      );
      expect(r.resolve('github.com/darciopacifico/taskmanager/processor.BirthdayProcessor')?.name).toBe(
        'BirthdayProcessor',
      );
      expect(r.resolve('NoopProcessor')?.name).toBe('NoopProcessor');
      expect(r.resolve('acme/NoSuchProcessor')).toBeUndefined();
    });

    it('should prefer an exact name over the last segment', () => {
      const r = new ProcessorRegistry();
      r.add({ name: 'billing.InvoiceProcessor', process: async () => undefined });
      expect(r.resolve('billing.InvoiceProcessor')?.name).toBe('billing.InvoiceProcessor');
      expect(lastSegment('a/b.c/D')).toBe('D');
    });
  });

  describe('when a user module is loaded', () => {
    it('should add the processors it exports', async () => {
      const r = new ProcessorRegistry();
      const added = await r.loadModule('examples/my-processors.js');
      expect(added).toContain('ReportProcessor');
      expect(r.resolve('com.acme.ReportProcessor')?.name).toBe('ReportProcessor');
    });

    it('should refuse a module that exports none', async () => {
      await expect(new ProcessorRegistry().loadModule('package.json')).rejects.toThrow(
        /--processors package.json/,
      );
    });
  });
});

describe('SleepProcessor', () => {
  describe('when aborted', () => {
    it('should reject at once with the abort reason', async () => {
      const ac = new AbortController();
      const p = sleepProcessor.process(task({ ms: 60_000 }), ctx(ac.signal));
      ac.abort(new Error('drain'));
      await expect(p).rejects.toThrow('drain');
    });
  });

  describe('when payload.ms is not a number', () => {
    it('should fail as non-retriable', async () => {
      await expect(
        sleepProcessor.process(task({ ms: 'x' }), ctx(new AbortController().signal)),
      ).rejects.toMatchObject({
        code: 'NON_RETRIABLE',
      });
    });
  });
});

describe('when the consumer builds its processors', () => {
  it('should offer webhook, email and command under their names and aliases', async () => {
    const { builtInProcessors } = await import('../../src/processors/built-in.js');
    const { ProcessorRegistry } = await import('../../src/processors/registry.js');
    const registry = new ProcessorRegistry(
      builtInProcessors({
        enableCommand: false,
        containerRuntime: 'docker',
        containerNetwork: 'none',
        containerMemory: '256m',
        containerCpus: '1',
        containerPids: 256,
        containerUser: '65534:65534',
      }),
    );
    const names = { webhook: 'WebhookProcessor', email: 'EmailProcessor', command: 'CommandProcessor' };
    for (const [alias, name] of Object.entries(names)) expect(registry.resolve(alias)?.name).toBe(name);
    expect(registry.names()).toContain('InvoiceProcessor');
  });
});
