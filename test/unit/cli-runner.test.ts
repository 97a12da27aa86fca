import { CommanderError, Option } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { positiveInt } from '../../src/shared/cli-common.js';
import { cliProgram, exitCodeOf, runProgram } from '../../src/shared/cli-runner.js';
import { AppError } from '../../src/shared/errors.js';

/** Runs a one-command program to its exit; resolves to the exit code and what it wrote on stderr. */
async function run(
  action: (opts: { count: number }) => Promise<void>,
  argv: string[],
): Promise<{ code: number | undefined; stderr: string }> {
  let stderr = '';
  const exited = new Promise<number>((resolve) => {
    vi.spyOn(process, 'exit').mockImplementation(((code?: number) => resolve(code ?? 0)) as never);
  });
  vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: string, done?: () => void) => {
    stderr += chunk;
    done?.();
    return true;
  }) as never);
  vi.spyOn(process.stdout, 'write').mockImplementation(((_chunk: string, done?: () => void) => {
    done?.();
    return true;
  }) as never);
  const program = cliProgram('prog', 'a test program')
    .addOption(new Option('-n, --count <n>').argParser(positiveInt('--count')).default(1))
    .action(action);
  await runProgram(program, argv);
  const code = await Promise.race([
    exited,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 200)),
  ]);
  return { code, stderr };
}

describe('the CLI runner', () => {
  afterEach(() => {
    vi.restoreAllMocks();
    process.exitCode = undefined;
  });

  describe('when a command refuses its usage', () => {
    it('should exit 2 with one line naming the program', async () => {
      const r = await run(async () => {
        throw new AppError('USAGE', '--secrets-dir /x: not a directory');
      }, []);
      expect(r).toEqual({ code: 2, stderr: 'prog: --secrets-dir /x: not a directory\n' });
    });

    it('should exit 2 on an argument commander refuses, leaving the message to commander', async () => {
      const r = await run(async () => undefined, ['-n=many']);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--count: expected a positive integer, got "many"');
      expect(r.stderr).not.toContain('prog: ');
    });
  });

  describe('when a command fails otherwise', () => {
    it('should exit 1 with its message on one line', async () => {
      const r = await run(async () => {
        throw new Error('cannot reach\nthe broker');
      }, []);
      expect(r).toEqual({ code: 1, stderr: 'prog: cannot reach | the broker\n' });
    });
  });

  describe('when a command succeeds', () => {
    it('should get the old Go tool flags and not exit on its own', async () => {
      let seen = 0;
      const r = await run(async (opts) => void (seen = opts.count), ['-count=3']);
      expect(seen).toBe(3);
      expect(r.code).toBeUndefined();
    });
  });

  describe('when deciding an exit code', () => {
    it('should take USAGE only from an AppError, not from any object with that code', () => {
      expect(exitCodeOf(new AppError('USAGE', 'x'))).toBe(2);
      expect(exitCodeOf(new AppError('KAFKA', 'x'))).toBe(1);
      expect(exitCodeOf(Object.assign(new Error('x'), { code: 'USAGE' }))).toBe(1);
      expect(exitCodeOf(new CommanderError(0, 'commander.helpDisplayed', '(outputHelp)'))).toBe(0);
      expect(exitCodeOf(new CommanderError(1, 'commander.unknownOption', 'x'))).toBe(2);
    });
  });
});
