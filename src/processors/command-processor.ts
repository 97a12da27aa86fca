import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { NonRetriableError, RetriableError } from '../shared/errors.js';
import { commandRefusal } from './command-policy.js';
import type { CommandPolicy } from './command-policy.js';
import { payloadParser } from './payload.js';
import type { Processor, ProcessorContext, ProcessorResult } from './types.js';

export interface CommandPayload {
  command: string[];
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
  /** Run in a fresh container of this image instead of on the host. */
  image?: string;
}

const parse = payloadParser<CommandPayload>('CommandProcessor', {
  type: 'object',
  additionalProperties: false,
  required: ['command'],
  properties: {
    command: { type: 'array', minItems: 1, items: { type: 'string' } },
    cwd: { type: 'string', minLength: 1 },
    env: {
      type: 'object',
      additionalProperties: { type: 'string' },
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 86_400_000 },
    image: { type: 'string', minLength: 1, pattern: '^[A-Za-z0-9][A-Za-z0-9._/:@-]*$' },
  },
});

export interface CommandOptions {
  /** Off unless `--enable-command`: a command from a task payload is remote code execution. */
  enabled: boolean;
  /** Exit codes that go to the DLQ at once instead of being retried. */
  nonRetriableExitCodes: readonly number[];
  /** Names of the consumer's environment variables a command inherits (besides the payload's `env`). */
  envAllow: readonly string[];
  /** Default time limit. @default 10 min */
  timeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL. @default 5000 */
  killGraceMs?: number;
  container: ContainerOptions;
  /** What tasks may run: host runs at all, which images, which programs. @default anything */
  policy?: CommandPolicy;
}

export interface ContainerOptions {
  /** The CLI: `docker` or `podman`. */
  runtime: string;
  /** `none` unless allowed. */
  network: string;
  memory: string;
  cpus: string;
  pids: number;
  /** @default 65534:65534 (nobody) */
  user: string;
}

/** Output kept per stream: the last 64 KiB. */
const TAIL_BYTES = 64 * 1024;

class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  dropped = 0;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.size += b.length;
    while (this.size > TAIL_BYTES) {
      const first = this.chunks[0]!;
      const over = this.size - TAIL_BYTES;
      if (first.length <= over) {
        this.chunks.shift();
        this.size -= first.length;
        this.dropped += first.length;
      } else {
        this.chunks[0] = first.subarray(over);
        this.size -= over;
        this.dropped += over;
      }
    }
  }

  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Tail;
  stderr: Tail;
  timedOut: boolean;
}

/**
 * Runs argv without a shell in its own process group; on abort or timeout the whole group gets SIGTERM, then
 * SIGKILL after the grace, so nothing it started is left behind. `onStop` runs too (a container's removal).
 */
function run(
  argv: string[],
  o: {
    cwd?: string;
    env: NodeJS.ProcessEnv;
    timeoutMs: number;
    graceMs: number;
    signal: AbortSignal;
    onStop?: () => void;
    /** Each chunk of output as it comes (the run log). */
    onOutput?: (stream: 'stdout' | 'stderr', chunk: Buffer) => void;
  },
): Promise<Exit> {
  return new Promise((resolve, reject) => {
    const stdout = new Tail();
    const stderr = new Tail();
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: o.cwd,
      env: o.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      o.onStop?.();
      const group = child.pid;
      if (group === undefined) return;
      try {
        process.kill(-group, 'SIGTERM');
      } catch {
        return; // already gone
      }
      killTimer = setTimeout(() => {
        try {
          process.kill(-group, 'SIGKILL');
        } catch {
          // gone meanwhile
        }
      }, o.graceMs);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, o.timeoutMs);
    const onAbort = (): void => stop();
    o.signal.addEventListener('abort', onAbort, { once: true });
    child.stdout.on('data', (b: Buffer) => {
      stdout.push(b);
      o.onOutput?.('stdout', b);
    });
    child.stderr.on('data', (b: Buffer) => {
      stderr.push(b);
      o.onOutput?.('stderr', b);
    });
    child.on('error', (err) => {
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      o.signal.removeEventListener('abort', onAbort);
      // The group may outlive its leader: the grace timer still kills what is left.
      if (!killTimer && child.pid !== undefined)
        try {
          process.kill(-child.pid, 0);
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // no process left in the group
        }
      resolve({ code, signal: sig, stdout, stderr, timedOut });
    });
  });
}

function containerArgv(c: ContainerOptions, name: string, p: CommandPayload): string[] {
  return [
    c.runtime,
    'run',
    '--rm',
    '--name',
    name,
    '--network',
    c.network,
    '--memory',
    c.memory,
    '--memory-swap',
    c.memory,
    '--cpus',
    c.cpus,
    '--pids-limit',
    String(c.pids),
    '--read-only',
    '--user',
    c.user,
    '--security-opt',
    'no-new-privileges',
    '--cap-drop',
    'ALL',
    ...Object.entries(p.env ?? {}).flatMap(([k, v]) => ['-e', `${k}=${v}`]),
    ...(p.cwd ? ['-w', p.cwd] : []),
    p.image!,
    ...p.command,
  ];
}

/**
 * `CommandProcessor` (also `command`): runs `payload.command` (argv, no shell), on the host or, with `image`, in a
 * fresh container. Exit 0 succeeds; other codes are retried unless listed as non-retriable; output tails (64 KiB
 * each) and the exit code go in the event, and the output, as it comes, in the run log (ctx.output). What the policy refuses never starts and goes to the DLQ at once.
 */
export function commandProcessor(o: CommandOptions): Processor {
  return {
    name: 'CommandProcessor',
    aliases: ['command'],
    async process(task, ctx: ProcessorContext): Promise<ProcessorResult> {
      if (!o.enabled)
        throw new NonRetriableError(
          'CommandProcessor is off: it runs programs named in task payloads; start taskconsumer with --enable-command to allow it',
        );
      const p = parse(task);
      const refusal = commandRefusal(p, o.policy ?? {});
      if (refusal) throw new NonRetriableError(`CommandProcessor: task ${task.taskId} refused: ${refusal}`);
      const inherited = Object.fromEntries(
        o.envAllow.flatMap((k) => (process.env[k] === undefined ? [] : [[k, process.env[k]]])),
      );
      const timeoutMs = p.timeoutMs ?? o.timeoutMs ?? 600_000;
      const name = `taskmanager-${randomBytes(6).toString('hex')}`;
      const inContainer = p.image !== undefined;
      const argv = inContainer ? containerArgv(o.container, name, p) : p.command;
      let exit: Exit;
      try {
        exit = await run(argv, {
          ...(p.cwd && !inContainer ? { cwd: p.cwd } : {}),
          env: inContainer
            ? { PATH: process.env.PATH ?? '/usr/bin:/bin', ...inheritedDockerEnv() }
            : { ...inherited, ...p.env },
          timeoutMs,
          graceMs: o.killGraceMs ?? 5000,
          signal: ctx.signal,
          onOutput: ctx.output,
          // The CLI's death does not stop the container: remove it by name.
          ...(inContainer
            ? {
                onStop: () =>
                  void run([o.container.runtime, 'rm', '-f', name], {
                    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...inheritedDockerEnv() },
                    timeoutMs: 30_000,
                    graceMs: 1000,
                    signal: new AbortController().signal,
                  }).catch(() => undefined),
              }
            : {}),
        });
      } catch (err) {
        const what = (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${argv[0]} not found` : String(err);
        throw new NonRetriableError(`CommandProcessor: cannot start ${JSON.stringify(argv[0])}: ${what}`);
      }
      if (ctx.signal.aborted) throw ctx.signal.reason;
      const details = {
        exitCode: exit.code,
        ...(exit.signal ? { signal: exit.signal } : {}),
        ...(inContainer ? { image: p.image, container: name } : {}),
        stdout: exit.stdout.text(),
        stderr: exit.stderr.text(),
        ...(exit.stdout.dropped + exit.stderr.dropped > 0
          ? { truncated: { stdoutBytes: exit.stdout.dropped, stderrBytes: exit.stderr.dropped } }
          : {}),
      };
      if (exit.timedOut)
        throw new RetriableError(`CommandProcessor: timed out after ${timeoutMs} ms (process group killed)`, {
          details,
        });
      if (exit.code === 0) return { details };
      const what = `CommandProcessor: ${argv[0]} exited with ${exit.code ?? exit.signal}`;
      if (exit.code !== null && o.nonRetriableExitCodes.includes(exit.code))
        throw new NonRetriableError(`${what} (listed in --non-retriable-exit-codes)`, { details });
      throw new RetriableError(what, { details });
    },
  };
}

/** What the container CLI needs to reach its engine (DOCKER_HOST and friends), never the rest of our env. */
function inheritedDockerEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of [
    'DOCKER_HOST',
    'DOCKER_CONFIG',
    'DOCKER_CERT_PATH',
    'DOCKER_TLS_VERIFY',
    'CONTAINER_HOST',
    'XDG_RUNTIME_DIR',
    'HOME',
  ])
    if (process.env[k] !== undefined) out[k] = process.env[k]!;
  return out;
}
