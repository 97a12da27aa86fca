import { Option } from 'commander';
import { commaList } from '../shared/cli-common.js';
import { BUILT_IN_PROCESSORS } from './registry.js';
import { AppError } from '../shared/errors.js';
import { programPatternProblem } from './command-policy.js';
import { commandProcessor } from './command-processor.js';
import { emailProcessor } from './email-processor.js';
import type { Processor } from './types.js';
import { webhookProcessor } from './webhook-processor.js';

/** The consumer's options for the processors that reach outside (webhook, email, command). */
export interface WorkProcessorOptions {
  webhookAllow?: string[];
  smtpUrl?: string;
  smtpFrom?: string;
  enableCommand: boolean;
  commandRequireImage?: boolean;
  commandImages?: string[];
  commandPrograms?: string[];
  nonRetriableExitCodes?: number[];
  commandEnv?: string[];
  containerRuntime: string;
  containerNetwork: string;
  containerMemory: string;
  containerCpus: string;
  containerPids: number;
  containerUser: string;
}

function exitCodes(value: string, previous: number[] | undefined): number[] {
  const codes = value.split(',').map((s) => Number(s.trim()));
  if (codes.some((c) => !Number.isInteger(c) || c < 0 || c > 255))
    throw new Error(`--non-retriable-exit-codes: expected codes 0-255, got ${JSON.stringify(value)}`);
  return [...(previous ?? []), ...codes];
}

function programList(value: string, previous: string[] | undefined): string[] {
  const programs = commaList(value, previous);
  const problems = programs.map(programPatternProblem).filter((p) => p !== undefined);
  if (problems.length > 0) throw new AppError('USAGE', `--command-programs: ${problems.join('; ')}`);
  return programs;
}

/** The CLI options of those processors, with their secure defaults. */
export function workProcessorCliOptions(): Option[] {
  return [
    new Option(
      '--webhook-allow <patterns>',
      'hosts webhooks may reach on loopback/private/link-local addresses (host, *.domain, address, CIDR; repeatable)',
    )
      .argParser(commaList)
      .env('TASKCONSUMER_WEBHOOK_ALLOW'),
    new Option(
      '--smtp-url <url>',
      'SMTP server for EmailProcessor (smtp://user:pass@host:587, smtps://…)',
    ).env('SMTP_URL'),
    new Option('--smtp-from <address>', 'sender of emails whose payload has no from').env('SMTP_FROM'),
    new Option(
      '--enable-command',
      'allow CommandProcessor to run programs named in task payloads (remote code execution)',
    ).default(false),
    new Option(
      '--command-require-image',
      'CommandProcessor runs only tasks with an image, in containers: tasks that would run on this host go to the DLQ',
    ).default(false),
    new Option(
      '--command-images <patterns>',
      'images command tasks may use (busybox = any tag of it, busybox:1.36, registry/team/*; repeatable; default any)',
    )
      .argParser(commaList)
      .env('TASKCONSUMER_COMMAND_IMAGES'),
    new Option(
      '--command-programs <programs>',
      'programs command tasks may run, on the host or in a container (bare names or absolute paths, * within a segment; repeatable; default any)',
    )
      .argParser(programList)
      .env('TASKCONSUMER_COMMAND_PROGRAMS'),
    new Option(
      '--non-retriable-exit-codes <codes>',
      'command exit codes that go to the DLQ at once (comma-separated)',
    ).argParser(exitCodes),
    new Option(
      '--command-env <names>',
      'environment variables commands inherit (default PATH, HOME, LANG, TZ; repeatable)',
    ).argParser(commaList),
    new Option('--container-runtime <cli>', 'container CLI for commands with an image')
      .choices(['docker', 'podman'])
      .default('docker'),
    new Option('--container-network <name>', 'network of command containers').default('none'),
    new Option('--container-memory <size>', 'memory limit of command containers').default('256m'),
    new Option('--container-cpus <n>', 'CPU limit of command containers').default('1'),
    new Option('--container-pids <n>', 'process limit of command containers').argParser(Number).default(256),
    new Option('--container-user <uid:gid>', 'user commands run as in containers').default('65534:65534'),
  ];
}

/** Every built-in processor, configured. */
export function builtInProcessors(o: WorkProcessorOptions): Processor[] {
  return [
    ...BUILT_IN_PROCESSORS,
    webhookProcessor({ allow: o.webhookAllow ?? [] }),
    emailProcessor({
      ...(o.smtpUrl ? { smtpUrl: o.smtpUrl } : {}),
      ...(o.smtpFrom ? { from: o.smtpFrom } : {}),
    }),
    commandProcessor({
      enabled: o.enableCommand,
      nonRetriableExitCodes: o.nonRetriableExitCodes ?? [],
      envAllow: o.commandEnv ?? ['PATH', 'HOME', 'LANG', 'TZ'],
      container: {
        runtime: o.containerRuntime,
        network: o.containerNetwork,
        memory: o.containerMemory,
        cpus: o.containerCpus,
        pids: o.containerPids,
        user: o.containerUser,
      },
      policy: {
        requireImage: o.commandRequireImage ?? false,
        images: o.commandImages ?? [],
        programs: o.commandPrograms ?? [],
      },
    }),
  ];
}
