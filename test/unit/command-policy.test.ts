import { describe, expect, it } from 'vitest';
import { commandProcessor } from '../../src/processors/command-processor.js';
import type { CommandOptions } from '../../src/processors/command-processor.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const task = (payload: unknown): TaskMessage => ({
  v: 1,
  taskId: 'backup@2026-11-22T10:00:00.000Z',
  scheduleId: 'backup',
  processor: 'CommandProcessor',
  payload,
  scheduledFor: '2026-11-22T10:00:00.000Z',
  firedAt: '2026-11-22T10:00:00.000Z',
  scheduler: { group: 'g', host: 'h', pid: 1 },
});
const ctx = {
  signal: new AbortController().signal,
  logger: silentLogger,
  attempt: 1,
  source: { topic: 't', partition: 0, offset: '0' },
  progress: () => undefined,
  output: () => undefined,
};

/** A command processor with these policy flags; a container "runtime" that cannot start, so nothing runs in one. */
function processorWith(policy: Record<string, unknown>) {
  const options = {
    enabled: true,
    nonRetriableExitCodes: [],
    envAllow: ['PATH'],
    container: {
      runtime: '/nonexistent/docker',
      network: 'none',
      memory: '64m',
      cpus: '1',
      pids: 16,
      user: '65534:65534',
    },
    policy,
  } as CommandOptions;
  return commandProcessor(options);
}

/** What became of the task: `ran` with its stdout, or `refused` / `failed` with the error's message. */
async function outcome(policy: Record<string, unknown>, payload: unknown): Promise<string> {
  try {
    const r = await processorWith(policy).process(task(payload), ctx);
    return `ran: ${String((r as { details: { stdout: string } }).details.stdout).trim()}`;
  } catch (err) {
    const e = err as { code?: string; message: string };
    return `${e.code === 'NON_RETRIABLE' && /refused/.test(e.message) ? 'refused' : 'failed'}: ${e.message}`;
  }
}

const T = 'CommandProcessor: task backup@2026-11-22T10:00:00.000Z refused: ';

describe('when the consumer runs with --command-require-image', () => {
  it('should refuse a task without an image for good, naming the task and the program, and run nothing', async () => {
    expect(await outcome({ requireImage: true }, { command: ['echo', 'on the host'] })).toBe(
      `refused: ${T}it would run "echo" on the host, and this consumer runs only containers (--command-require-image): give the payload an image`,
    );
  });

  it('should still hand a task with an image to the container runtime', async () => {
    expect(await outcome({ requireImage: true }, { command: ['echo'], image: 'busybox:1.36' })).toMatch(
      /^failed: CommandProcessor: cannot start "\/nonexistent\/docker"/,
    );
  });
});

describe('when the consumer runs with --command-images', () => {
  const images = ['busybox', 'alpine:3.20', 'registry.corp:5000/tools/*'];

  it('should refuse other images, naming the image and the list', async () => {
    const refused = [
      'evil:latest',
      'busybox-evil',
      'alpine:latest',
      'registry.corp:5000/tools/sub/x:1',
      'registry.corp:5000/other/x',
    ];
    for (const image of refused)
      expect(await outcome({ images }, { command: ['sh'], image })).toBe(
        `refused: ${T}image "${image}" is not in --command-images (busybox, alpine:3.20, registry.corp:5000/tools/*)`,
      );
  });

  it('should take any tag or digest of a listed name, a listed tag, and a pattern within one segment', async () => {
    for (const image of [
      'busybox',
      'busybox:1.36',
      'busybox@sha256:abc',
      'alpine:3.20',
      'registry.corp:5000/tools/pg:16',
    ])
      expect(await outcome({ images }, { command: ['sh'], image })).toMatch(/^failed: .*cannot start/);
  });
});

describe('when the consumer runs with --command-programs', () => {
  const programs = ['echo', '/usr/bin/env', '/opt/jobs/*'];

  it('should run a listed program on the host', async () => {
    expect(await outcome({ programs }, { command: ['echo', 'allowed'] })).toBe('ran: allowed');
  });

  it('should refuse any other, on the host or in a container, naming the program and the list', async () => {
    const refused = [
      ['sh', '-c', 'echo no'],
      ['/bin/echo', 'a path is not the bare name'],
      ['./echo'],
      ['/opt/jobs/../../bin/sh'],
      ['/opt/jobs/sub/run'],
    ];
    for (const command of refused) {
      const list = '(echo, /usr/bin/env, /opt/jobs/*)';
      const want = `refused: ${T}program ${JSON.stringify(command[0])} is not in --command-programs ${list}`;
      expect(await outcome({ programs }, { command })).toBe(want);
      expect(await outcome({ programs }, { command, image: 'busybox' })).toBe(want);
    }
  });

  it('should refuse an env that chooses which file a listed name runs, or what it loads', async () => {
    for (const name of ['PATH', 'LD_PRELOAD', 'DYLD_INSERT_LIBRARIES'])
      expect(await outcome({ programs }, { command: ['echo'], env: { [name]: '/tmp/x' } })).toBe(
        `refused: ${T}its env sets ${name}, which would choose what "echo" runs; --command-programs does not allow that`,
      );
  });
});

describe('when --command-programs names a relative path', () => {
  it('should refuse it at start as a usage error, naming it', async () => {
    const { Command } = await import('commander');
    const { workProcessorCliOptions } = await import('../../src/processors/built-in.js');
    const program = new Command().exitOverride();
    for (const o of workProcessorCliOptions()) program.addOption(o);
    expect(() => program.parse(['--command-programs', 'echo,bin/run,/opt/../x'], { from: 'user' })).toThrow(
      '--command-programs: "bin/run" is neither a bare program name nor an absolute path; "/opt/../x" has a . or .. segment',
    );
  });
});
