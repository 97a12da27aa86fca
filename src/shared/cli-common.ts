import { InvalidArgumentError, Option } from 'commander';
import { LOG_LEVEL_NAMES, parseLogLevel } from './logger.js';
import { silentLogger } from './logger.js';
import type { Logger, LogLevel } from './logger.js';
import { createWinstonLogger } from './winston-logger.js';
import type { LogFormat } from './winston-logger.js';
import { AppError } from './errors.js';
import { KafkaClient } from './kafka/client.js';
import type { KafkaOptions } from './kafka/client.js';
import { PLAINTEXT, readKafkaConfig } from './kafka/security.js';
import type { KafkaConnection } from './kafka/security.js';

/**
 * Rewrites the old Go tool's single-dash long flags (`-brokers=x`, `-schedule=y`, `-topic=t`, `-l=DEBUG`) into the
 * forms commander understands (`--brokers=x`, `-l DEBUG`). Other arguments pass unchanged.
 */
export function normalizeGoFlags(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (const arg of argv) {
    const m = /^-([A-Za-z][\w-]*)(?:=(.*))?$/s.exec(arg);
    if (!m || arg.startsWith('--')) {
      out.push(arg);
      continue;
    }
    const [, name = '', value] = m;
    if (name.length === 1) out.push(...(value === undefined ? [arg] : [`-${name}`, value]));
    else out.push(value === undefined ? `--${name}` : `--${name}=${value}`);
  }
  return out;
}

export const DEFAULT_BROKERS = '127.0.0.1:9092';

export function brokersOption(): Option {
  return new Option(
    '-b, --brokers <list>',
    `Kafka bootstrap brokers, comma-separated (default ${DEFAULT_BROKERS}, or bootstrap.servers of --kafka-config)`,
  ).env('KAFKA_BROKERS');
}

export function kafkaConfigOption(): Option {
  return new Option(
    '--kafka-config <file>',
    'Kafka client properties (as Kafka tools take with --command-config): TLS, SASL, credentials',
  ).env('KAFKA_CONFIG');
}

export interface KafkaCliOptions {
  brokers?: string;
  kafkaConfig?: string;
}

/** Brokers and TLS/SASL settings from `--brokers` and `--kafka-config` (USAGE errors: exit 2). */
function kafkaTarget(
  opts: KafkaCliOptions,
  warn: (message: string) => void,
): { brokers: string[]; connection: KafkaConnection } {
  const connection = opts.kafkaConfig ? readKafkaConfig(opts.kafkaConfig, { warn }) : PLAINTEXT;
  const list = opts.brokers ?? connection.bootstrapServers?.join(',') ?? DEFAULT_BROKERS;
  return { brokers: parseBrokers(list), connection };
}

/**
 * A Kafka client for a program or subcommand, checked against the cluster first: a wrong password, an untrusted
 * certificate or a protocol mismatch fails here with one line (exit 1) instead of retrying for ever.
 */
export async function connectKafka(
  opts: KafkaCliOptions,
  logger: Logger,
  clientId: string,
  extra: Omit<KafkaOptions, 'brokers' | 'connection' | 'logger' | 'clientId'> = {},
): Promise<KafkaClient> {
  const kafka = new KafkaClient({ ...kafkaTarget(opts, (m) => logger.warn(m)), logger, clientId, ...extra });
  await kafka.preflight();
  return kafka;
}

export function logLevelOption(): Option {
  return new Option('-l, --log-level <level>', `log level (${LOG_LEVEL_NAMES.join(', ')}; any case)`)
    .env('LOG_LEVEL')
    .default('info');
}

export function logFormatOption(): Option {
  return new Option('--log-format <format>', 'log line format')
    .choices(['text', 'json'])
    .env('LOG_FORMAT')
    .default('text');
}

export function metricsPortOption(): Option {
  return new Option(
    '--metrics-port <port>',
    'serve /metrics, /healthz and /readyz on this port (off by default)',
  )
    .env('METRICS_PORT')
    .argParser(portNumber('--metrics-port'));
}

/**
 * Loopback by default: the metrics and readiness answers name brokers, groups and Kafka's errors, for the operator's
 * scraper on the same host (or a sidecar), not for the network. `--metrics-host 0.0.0.0` serves them to it.
 */
export function metricsHostOption(): Option {
  return new Option(
    '--metrics-host <address>',
    'address the metrics port listens on (0.0.0.0: every interface)',
  )
    .env('METRICS_HOST')
    .default('127.0.0.1');
}

export function portNumber(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535)
      throw new InvalidArgumentError(`${name} must be a port number 0-65535 (got ${JSON.stringify(v)})`);
    return n;
  };
}

export function parseBrokers(list: string): string[] {
  const brokers = list
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) throw new AppError('USAGE', `--brokers: no broker in ${JSON.stringify(list)}`);
  return brokers;
}

export function loggerFromOptions(
  opts: { logLevel: string; logFormat: string },
  base: Record<string, unknown>,
): Logger {
  const level: LogLevel | undefined = parseLogLevel(opts.logLevel);
  if (!level) {
    throw new AppError(
      'USAGE',
      `--log-level: unknown level ${JSON.stringify(opts.logLevel)}; use one of ${LOG_LEVEL_NAMES.join(', ')}`,
    );
  }
  return createWinstonLogger({ level, format: opts.logFormat as LogFormat, base });
}

export function positiveInt(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) {
      throw new InvalidArgumentError(`${name}: expected a positive integer, got ${JSON.stringify(v)}`);
    }
    return n;
  };
}

/** A repeatable option whose values may also be comma-separated: `--x a,b --x c` → [a, b, c]. */
export function commaList(value: string, previous: string[] | undefined): string[] {
  return [
    ...(previous ?? []),
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  ];
}

/** For one-shot subcommands: nothing but warnings, on stderr (e.g. a Kafka config file others can read). */
export const stderrWarnings: Logger = {
  ...silentLogger,
  warn: (message) => process.stderr.write(`warning: ${message}\n`),
  child: () => stderrWarnings,
};
