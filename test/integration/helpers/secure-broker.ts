import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import { brokers } from './kafka.js';
import { ROOT } from './processes.js';

const run = promisify(execFile);

/** What `scripts/kafka-local --secure` wrote into `<data dir>/secure/credentials.json`. */
export interface Credentials {
  bootstrap: string;
  mtlsBootstrap: string;
  plainBootstrap: string;
  dir: string;
  ca: string;
  otherCa: string;
  truststore: { path: string; password: string };
  operatorCert: { keystorePem: string; p12: string; p12Password: string };
  users: Record<string, { password: string; config: string }>;
  mtlsConfig: string;
}

export const USERS = ['admin', 'taskscheduler', 'taskconsumer', 'taskapi', 'operator', 'nobody'] as const;
export type User = (typeof USERS)[number];

/**
 * A secured broker (SASL_SSL + SCRAM, mutual TLS, ACLs) of `scripts/kafka-local --secure` in a fresh data dir, on
 * ports 100 above the tests' own broker, for one test file.
 */
export class SecureBroker {
  readonly data = mkdtempSync(join(tmpdir(), 'kafka-secure-'));
  readonly port = Number(brokers().split(',')[0]!.split(':').pop()) + 100;
  creds!: Credentials;

  private env(): NodeJS.ProcessEnv {
    return {
      ...process.env,
      KAFKA_LOCAL_SECURE: '1',
      KAFKA_LOCAL_PORT: String(this.port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(this.port + 1),
      KAFKA_LOCAL_DATA: this.data,
    };
  }

  async start(): Promise<void> {
    await run('bash', [join(ROOT, 'scripts/kafka-local'), 'start'], { env: this.env(), cwd: ROOT });
    this.creds = JSON.parse(readFileSync(join(this.data, 'secure/credentials.json'), 'utf8')) as Credentials;
  }

  async stop(): Promise<void> {
    await run('bash', [join(ROOT, 'scripts/kafka-local'), 'stop'], { env: this.env(), cwd: ROOT }).catch(
      () => undefined,
    );
    rmSync(this.data, { recursive: true, force: true });
  }

  config(user: User): string {
    return this.creds.users[user]!.config;
  }

  /** Writes a client properties file (mode 600) next to the generated ones; its path. */
  writeConfig(name: string, lines: string[]): string {
    const file = join(this.creds.dir, `${name}.properties`);
    writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600 });
    return file;
  }

  /** A kafkajs client logged in as `user` (SCRAM-SHA-512 over TLS). */
  kafka(user: User): Kafka {
    return new Kafka({
      brokers: this.creds.bootstrap.split(','),
      clientId: `tests-${user}`,
      logLevel: logLevel.NOTHING,
      ssl: { ca: readFileSync(this.creds.ca, 'utf8') },
      sasl: { mechanism: 'scram-sha-512', username: user, password: this.creds.users[user]!.password },
      retry: { retries: 3 },
    });
  }

  /** Every secret the broker's users and stores have: none may appear in a program's output. */
  secrets(): string[] {
    return [
      ...Object.values(this.creds.users).map((u) => u.password),
      this.creds.truststore.password,
      this.creds.operatorCert.p12Password,
    ];
  }

  /** Runs a script of ours (create-topics.sh, create-acls.sh), with the admin's config unless `asAdmin` is false. */
  async script(name: string, args: string[], asAdmin = true): Promise<{ code: number; out: string }> {
    const config = asAdmin ? ['--command-config', this.config('admin')] : [];
    const argv = [
      join(ROOT, 'scripts', name),
      '--bootstrap-server',
      this.creds.bootstrap,
      ...config,
      ...args,
    ];
    return run('bash', argv, { cwd: ROOT }).then(
      (r) => ({ code: 0, out: r.stdout + r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({
        code: e.code ?? -1,
        out: `${e.stdout ?? ''}${e.stderr ?? ''}`,
      }),
    );
  }
}
