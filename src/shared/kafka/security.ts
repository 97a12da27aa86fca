import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import { parse as parseProperties } from 'dot-properties';
import forge from 'node-forge';
import { AppError, errorMessage } from '../errors.js';
import { OAuthTokenSource } from './oauth-token.js';

/**
 * How a client connects to Kafka, read from a Kafka client properties file (the one Kafka's own tools take with
 * `--command-config`): security protocol, SASL mechanism and credentials, TLS trust and client certificate.
 */
export interface KafkaConnection {
  protocol: SecurityProtocol;
  mechanism?: SaslMechanism;
  /** The SASL user (PLAIN, SCRAM) or token subject, when known: for error messages. Never a secret. */
  principal?: string;
  /** TLS options for kafkajs (and for our own TLS probe). */
  ssl?: ConnectionOptions;
  sasl?: SaslCredentials;
  /** `bootstrap.servers` of the file, when it has one. */
  bootstrapServers?: string[];
  /** The file it came from, when any. */
  source?: string;
}

/** SASL credentials as the client takes them: a user and password (PLAIN, SCRAM), or a token source (OAUTHBEARER). */
export type SaslCredentials =
  | { mechanism: 'plain'; username: string; password: string }
  | { mechanism: 'scram-sha-256'; username: string; password: string }
  | { mechanism: 'scram-sha-512'; username: string; password: string }
  | { mechanism: 'oauthbearer'; oauthBearerProvider: () => Promise<{ value: string }> };

export const SECURITY_PROTOCOLS = ['PLAINTEXT', 'SSL', 'SASL_PLAINTEXT', 'SASL_SSL'] as const;
export type SecurityProtocol = (typeof SECURITY_PROTOCOLS)[number];
export const SASL_MECHANISMS = ['PLAIN', 'SCRAM-SHA-256', 'SCRAM-SHA-512', 'OAUTHBEARER'] as const;
export type SaslMechanism = (typeof SASL_MECHANISMS)[number];

export const PLAINTEXT: KafkaConnection = { protocol: 'PLAINTEXT' };

/** Our own properties (Kafka's tools ignore unknown ones with a warning, so one file serves both). */
export const TOKEN_COMMAND = 'taskmanager.oauthbearer.token.command';
export const TOKEN_FILE = 'taskmanager.oauthbearer.token.file';

const SUPPORTED = new Set([
  'bootstrap.servers',
  'security.protocol',
  'sasl.mechanism',
  'sasl.jaas.config',
  'ssl.truststore.type',
  'ssl.truststore.location',
  'ssl.truststore.password',
  'ssl.truststore.certificates',
  'ssl.keystore.type',
  'ssl.keystore.location',
  'ssl.keystore.password',
  'ssl.key.password',
  'ssl.keystore.key',
  'ssl.keystore.certificate.chain',
  'ssl.endpoint.identification.algorithm',
  'config.providers',
  TOKEN_COMMAND,
  TOKEN_FILE,
]);

/** Hints for properties operators often have that we refuse. */
const REFUSED_HINTS: Array<[RegExp, string]> = [
  [/^sasl\.oauthbearer\./, `fetch the token with ${TOKEN_COMMAND} or ${TOKEN_FILE} instead`],
  [/^sasl\.(login|client)\.callback\.handler\.class$/, 'Java callback handlers cannot run here'],
  [
    /^ssl\.(protocol|enabled\.protocols|cipher\.suites)$/,
    'Node.js negotiates TLS 1.2 or 1.3 with its defaults',
  ],
];

const ENV_PROVIDER = 'org.apache.kafka.common.config.provider.EnvVarConfigProvider';
const FILE_PROVIDER = 'org.apache.kafka.common.config.provider.FileConfigProvider';

export interface ReadOptions {
  env?: NodeJS.ProcessEnv;
  /** Told about files others can read (config, keys, tokens). */
  warn?: (message: string) => void;
}

/** Reads a Kafka client properties file. Throws a USAGE AppError (exit 2) naming the file and the property. */
export function readKafkaConfig(file: string, options: ReadOptions = {}): KafkaConnection {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new AppError('USAGE', `--kafka-config ${file}: cannot read it (${errorMessage(err)})`);
  }
  warnIfOthersCanRead(file, 'Kafka client config', options.warn);
  return kafkaConnectionFrom(flatProperties(text), { ...options, file });
}

/** `key=value` lines of a Java properties file (comments, continuations and escapes as Java reads them). */
function flatProperties(text: string): Record<string, string> {
  return parseProperties(text, false) as Record<string, string>;
}

/** Builds the connection from parsed properties; relative paths are taken from the file's folder. */
export function kafkaConnectionFrom(
  raw: Record<string, string>,
  options: ReadOptions & { file?: string } = {},
): KafkaConnection {
  const file = options.file ?? '(properties)';
  const fail = (message: string): never => {
    throw new AppError('USAGE', `--kafka-config ${file}: ${message}`);
  };
  const providers = providersOf(raw, fail);
  const props = new Map<string, string>();
  for (const [key, value] of Object.entries(raw)) {
    if (key.startsWith('config.providers.')) continue;
    if (!SUPPORTED.has(key)) {
      const hint = REFUSED_HINTS.find(([re]) => re.test(key))?.[1];
      fail(`property ${key} is not supported${hint ? ` (${hint})` : ''}; remove it`);
    }
    props.set(key, resolveReferences(key, value, providers, options.env ?? process.env, fail));
  }
  const base = options.file ? dirname(resolve(options.file)) : process.cwd();
  const path = (key: string) => resolve(base, props.get(key)!);
  const read = (key: string, what: string, secret: boolean): Buffer => {
    const p = path(key);
    try {
      const data = readFileSync(p);
      if (secret) warnIfOthersCanRead(p, what, options.warn);
      return data;
    } catch (err) {
      return fail(`${key}: cannot read ${p} (${errorMessage(err)})`);
    }
  };

  const protocol = (props.get('security.protocol') ?? 'PLAINTEXT').toUpperCase();
  if (!(SECURITY_PROTOCOLS as readonly string[]).includes(protocol))
    fail(`security.protocol ${protocol} is not one of ${SECURITY_PROTOCOLS.join(', ')}`);
  const conn: KafkaConnection = { protocol: protocol as SecurityProtocol };
  if (options.file) conn.source = options.file;
  const servers = props.get('bootstrap.servers');
  if (servers)
    conn.bootstrapServers = servers
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);

  const tlsKeys = [...props.keys()].filter((k) => k.startsWith('ssl.'));
  if (protocol === 'SSL' || protocol === 'SASL_SSL') conn.ssl = tlsOptions(props, read, fail);
  else if (tlsKeys.length > 0) fail(`${tlsKeys[0]} is set but security.protocol is ${protocol} (no TLS)`);

  const saslKeys = [...props.keys()].filter((k) => k.startsWith('sasl.') || k.startsWith('taskmanager.'));
  if (protocol === 'SASL_PLAINTEXT' || protocol === 'SASL_SSL') saslOptions(conn, props, read, fail);
  else if (saslKeys.length > 0) fail(`${saslKeys[0]} is set but security.protocol is ${protocol} (no SASL)`);
  return conn;
}

function providersOf(raw: Record<string, string>, fail: (m: string) => never): Map<string, 'env' | 'file'> {
  const out = new Map<string, 'env' | 'file'>([
    ['env', 'env'],
    ['file', 'file'],
  ]);
  const declared = (raw['config.providers'] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  for (const alias of declared) {
    const cls = raw[`config.providers.${alias}.class`];
    if (cls === ENV_PROVIDER) out.set(alias, 'env');
    else if (cls === FILE_PROVIDER) out.set(alias, 'file');
    else
      fail(
        `config provider ${alias} (${cls ?? 'no class'}) is not supported; use ${ENV_PROVIDER} or ${FILE_PROVIDER}`,
      );
  }
  for (const key of Object.keys(raw)) {
    const m = /^config\.providers\.([^.]+)\.(.+)$/.exec(key);
    if (m && m[2] !== 'class') fail(`property ${key} is not supported; remove it`);
  }
  return out;
}

/** `${env:NAME}` (Kafka's EnvVarConfigProvider) and `${file:/path:key}` (FileConfigProvider) references. */
function resolveReferences(
  key: string,
  value: string,
  providers: Map<string, 'env' | 'file'>,
  env: NodeJS.ProcessEnv,
  fail: (m: string) => never,
): string {
  return value.replace(/\$\{([A-Za-z0-9_-]+):([^}]*)\}/g, (whole, alias: string, rest: string) => {
    const kind = providers.get(alias);
    if (!kind) return whole;
    if (kind === 'env') {
      const name = rest.startsWith(':') ? rest.slice(1) : rest;
      const v = env[name];
      if (v === undefined) fail(`${key} refers to environment variable ${name}, which is not set`);
      return v!;
    }
    const cut = rest.lastIndexOf(':');
    if (cut <= 0) fail(`${key}: a file reference is \${${alias}:/path/to/file.properties:key}`);
    const [path, name] = [rest.slice(0, cut), rest.slice(cut + 1)];
    let values: Record<string, string>;
    try {
      values = flatProperties(readFileSync(path, 'utf8'));
    } catch (err) {
      return fail(`${key} refers to ${path}, which cannot be read (${errorMessage(err)})`);
    }
    if (values[name] === undefined) fail(`${key} refers to key ${name} of ${path}, which has no such key`);
    return values[name]!;
  });
}

type Reader = (key: string, what: string, secret: boolean) => Buffer;

function tlsOptions(props: Map<string, string>, read: Reader, fail: (m: string) => never): ConnectionOptions {
  const ssl: ConnectionOptions = { rejectUnauthorized: true };
  const verifyHost = props.get('ssl.endpoint.identification.algorithm');
  if (verifyHost !== undefined && verifyHost !== '' && verifyHost.toLowerCase() !== 'https')
    fail(`ssl.endpoint.identification.algorithm must be https or empty, got ${verifyHost}`);
  if (verifyHost === '') ssl.checkServerIdentity = () => undefined;

  const trustType = (props.get('ssl.truststore.type') ?? 'PEM').toUpperCase();
  if (props.has('ssl.truststore.certificates')) {
    ssl.ca = props.get('ssl.truststore.certificates')!;
  } else if (props.has('ssl.truststore.location')) {
    const data = read('ssl.truststore.location', 'truststore', false);
    if (trustType === 'PEM') ssl.ca = data.toString('utf8');
    else if (trustType === 'PKCS12') {
      ssl.ca = trustedCertsOfPkcs12(data, props.get('ssl.truststore.password') ?? '', fail);
    } else fail(`ssl.truststore.type ${trustType} is not supported (use PEM or PKCS12)`);
  }

  const keyType = (props.get('ssl.keystore.type') ?? 'PEM').toUpperCase();
  const keyPassword = props.get('ssl.key.password') ?? props.get('ssl.keystore.password');
  if (props.has('ssl.keystore.key') || props.has('ssl.keystore.certificate.chain')) {
    if (!props.has('ssl.keystore.key') || !props.has('ssl.keystore.certificate.chain'))
      fail('ssl.keystore.key and ssl.keystore.certificate.chain go together');
    ssl.key = props.get('ssl.keystore.key')!;
    ssl.cert = props.get('ssl.keystore.certificate.chain')!;
    if (keyPassword !== undefined) ssl.passphrase = keyPassword;
  } else if (props.has('ssl.keystore.location')) {
    const data = read('ssl.keystore.location', 'keystore', true);
    if (keyType === 'PKCS12') {
      ssl.pfx = data;
      ssl.passphrase = props.get('ssl.keystore.password') ?? '';
    } else if (keyType === 'PEM') {
      const pem = data.toString('utf8');
      const keys = pem.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----/g);
      const certs = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g);
      if (!keys || !certs)
        fail('ssl.keystore.location: a PEM keystore holds the private key and the certificate chain');
      ssl.key = keys![0]!;
      ssl.cert = certs!.join('\n');
      if (keyPassword !== undefined) ssl.passphrase = keyPassword;
    } else fail(`ssl.keystore.type ${keyType} is not supported (use PEM or PKCS12)`);
  }
  return ssl;
}

/** The trusted certificates of a PKCS12 truststore (as keytool writes it), as PEM. */
function trustedCertsOfPkcs12(data: Buffer, password: string, fail: (m: string) => never): string[] {
  try {
    const p12 = forge.pkcs12.pkcs12FromAsn1(forge.asn1.fromDer(data.toString('binary')), password);
    const bags = p12.getBags({ bagType: forge.pki.oids.certBag! })[forge.pki.oids.certBag!] ?? [];
    const pems = bags.flatMap((b) => (b.cert ? [forge.pki.certificateToPem(b.cert)] : []));
    if (pems.length === 0) fail('ssl.truststore.location: the PKCS12 truststore holds no certificate');
    return pems;
  } catch (err) {
    if (err instanceof AppError) throw err;
    const why = /MAC could not be verified/.test(errorMessage(err))
      ? 'wrong ssl.truststore.password'
      : errorMessage(err);
    return fail(`ssl.truststore.location: cannot read the PKCS12 truststore (${why})`);
  }
}

function saslOptions(
  conn: KafkaConnection,
  props: Map<string, string>,
  read: Reader,
  fail: (m: string) => never,
): void {
  const mechanism = (props.get('sasl.mechanism') ?? 'GSSAPI').toUpperCase();
  if (!(SASL_MECHANISMS as readonly string[]).includes(mechanism))
    fail(
      `sasl.mechanism ${mechanism} is not supported (use ${SASL_MECHANISMS.join(', ')}; for AWS MSK IAM use OAUTHBEARER with ${TOKEN_COMMAND})`,
    );
  conn.mechanism = mechanism as SaslMechanism;
  const jaas = props.has('sasl.jaas.config') ? parseJaas(props.get('sasl.jaas.config')!, fail) : undefined;
  const wantModule = {
    PLAIN: 'org.apache.kafka.common.security.plain.PlainLoginModule',
    'SCRAM-SHA-256': 'org.apache.kafka.common.security.scram.ScramLoginModule',
    'SCRAM-SHA-512': 'org.apache.kafka.common.security.scram.ScramLoginModule',
    OAUTHBEARER: 'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule',
  }[conn.mechanism];
  if (jaas && jaas.module !== wantModule && !jaas.module.endsWith(`.${wantModule.split('.').pop()}`))
    fail(`sasl.jaas.config uses ${jaas.module}, but sasl.mechanism ${mechanism} needs ${wantModule}`);

  if (conn.mechanism === 'OAUTHBEARER') {
    const command = props.get(TOKEN_COMMAND);
    const file = props.has(TOKEN_FILE) ? props.get(TOKEN_FILE) : undefined;
    const unsecuredSub = jaas?.options.get('unsecuredLoginStringClaim_sub');
    const sources = [command, file, unsecuredSub].filter((s) => s !== undefined).length;
    if (sources !== 1)
      fail(
        `OAUTHBEARER needs exactly one token source: ${TOKEN_COMMAND}, ${TOKEN_FILE}, or unsecuredLoginStringClaim_sub in sasl.jaas.config (unsigned tokens, for tests)`,
      );
    if (file !== undefined) read(TOKEN_FILE, 'token file', true);
    const source = new OAuthTokenSource(
      command !== undefined
        ? { command }
        : file !== undefined
          ? { file }
          : { unsecuredSubject: unsecuredSub! },
    );
    if (unsecuredSub) conn.principal = unsecuredSub;
    conn.sasl = { mechanism: 'oauthbearer', oauthBearerProvider: () => source.token() };
    return;
  }
  for (const k of [TOKEN_COMMAND, TOKEN_FILE])
    if (props.has(k)) fail(`${k} is only for sasl.mechanism OAUTHBEARER`);
  const username = jaas?.options.get('username');
  const password = jaas?.options.get('password');
  if (!jaas || username === undefined || password === undefined)
    fail(`sasl.mechanism ${mechanism} needs username="…" password="…" in sasl.jaas.config`);
  conn.principal = username!;
  const kind = {
    PLAIN: 'plain',
    'SCRAM-SHA-256': 'scram-sha-256',
    'SCRAM-SHA-512': 'scram-sha-512',
  } as const;
  conn.sasl = { mechanism: kind[conn.mechanism], username: username!, password: password! };
}

interface Jaas {
  module: string;
  options: Map<string, string>;
}

/**
 * `org.example.LoginModule required key="value" other=value;` as Kafka writes `sasl.jaas.config`. Errors never
 * quote the value: it holds a password.
 */
export function parseJaas(text: string, fail: (m: string) => never): Jaas {
  let i = 0;
  const skip = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const word = () => {
    skip();
    const start = i;
    while (i < text.length && /[^\s=;"]/.test(text[i]!)) i++;
    return text.slice(start, i);
  };
  const module = word();
  const flag = word();
  if (!module || !/^(required|requisite|sufficient|optional)$/.test(flag))
    fail('sasl.jaas.config must read: <LoginModule class> required key="value" …;');
  const options = new Map<string, string>();
  for (;;) {
    skip();
    if (text[i] === ';' || i >= text.length) break;
    const key = word();
    skip();
    if (!key || text[i] !== '=')
      fail(`sasl.jaas.config: expected key="value" after ${options.size} option(s)`);
    i++;
    skip();
    let value = '';
    if (text[i] === '"') {
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === '\\' && i + 1 < text.length) i++;
        value += text[i++];
      }
      if (text[i] !== '"') fail(`sasl.jaas.config: the value of ${key} has no closing quote`);
      i++;
    } else value = word();
    options.set(key, value);
  }
  if (text[i] !== ';') fail('sasl.jaas.config must end with ";"');
  return { module, options };
}

/** Warns when a file that may hold secrets can be read by the group or others. */
function warnIfOthersCanRead(path: string, what: string, warn?: (message: string) => void): void {
  if (!warn) return;
  try {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077)
      warn(`${what} ${path} can be read by others (mode ${mode.toString(8).padStart(4, '0')}): chmod 600 it`);
  } catch {
    // reported by the read itself
  }
}

/** "SASL_SSL, SCRAM-SHA-512 as taskscheduler" — what a log line may say about the connection. */
export function describeConnection(conn: KafkaConnection): string {
  return [conn.protocol, conn.mechanism, conn.principal && `as ${conn.principal}`].filter(Boolean).join(' ');
}
