import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AppError } from '../../src/shared/errors.js';
import { OAuthTokenSource, parseToken } from '../../src/shared/kafka/oauth-token.js';
import { kafkaConnectionFrom, readKafkaConfig } from '../../src/shared/kafka/security.js';

const dir = mkdtempSync(join(tmpdir(), 'kafka-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes a properties file (mode 600 unless told) and returns its path. */
function file(name: string, text: string, mode = 0o600): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
}

function refused(props: Record<string, string>, env: NodeJS.ProcessEnv = {}): string {
  try {
    kafkaConnectionFrom(props, { env, file: 'client.properties' });
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).code).toBe('USAGE');
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

const SCRAM = 'org.apache.kafka.common.security.scram.ScramLoginModule';

describe('the Kafka client properties file (--kafka-config)', () => {
  it('should read SASL_SSL with SCRAM as Kafka writes it, continuation lines and comments included', () => {
    const ca = file('ca.pem', '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 0o644);
    const p = file(
      'scram.properties',
      [
        '# written for kafka-topics.sh --command-config',
        'security.protocol=SASL_SSL',
        'sasl.mechanism=SCRAM-SHA-512',
        `sasl.jaas.config=${SCRAM} required \\`,
        '    username="taskscheduler" \\',
        '    password="p=a\\\\"s;s";',
        'ssl.truststore.type=PEM',
        'ssl.truststore.location=ca.pem',
        'bootstrap.servers=b1:9093, b2:9093',
      ].join('\n'),
    );
    const conn = readKafkaConfig(p);
    expect(conn.protocol).toBe('SASL_SSL');
    expect(conn.mechanism).toBe('SCRAM-SHA-512');
    expect(conn.principal).toBe('taskscheduler');
    expect(conn.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'taskscheduler', password: 'p=a"s;s' });
    expect(conn.ssl?.ca).toContain('BEGIN CERTIFICATE');
    expect(conn.ssl?.rejectUnauthorized).toBe(true);
    expect(conn.ssl?.checkServerIdentity).toBeUndefined();
    expect(conn.bootstrapServers).toEqual(['b1:9093', 'b2:9093']);
    void ca;
  });

  it('should take PLAIN and SCRAM-SHA-256, and turn hostname checks off only when asked', () => {
    const plain = kafkaConnectionFrom({
      'security.protocol': 'SASL_PLAINTEXT',
      'sasl.mechanism': 'PLAIN',
      'sasl.jaas.config':
        'org.apache.kafka.common.security.plain.PlainLoginModule required username=u password=p;',
    });
    expect(plain.sasl).toEqual({ mechanism: 'plain', username: 'u', password: 'p' });
    expect(plain.ssl).toBeUndefined();
    const scram = kafkaConnectionFrom({
      'security.protocol': 'sasl_ssl',
      'sasl.mechanism': 'SCRAM-SHA-256',
      'sasl.jaas.config': `${SCRAM} required username="u" password="p";`,
      'ssl.endpoint.identification.algorithm': '',
    });
    expect(scram.sasl).toMatchObject({ mechanism: 'scram-sha-256' });
    expect(scram.ssl?.checkServerIdentity?.('x', {} as never)).toBeUndefined();
  });

  it('should fill ${env:NAME} and ${file:path:key} references, and name a missing variable', () => {
    const secrets = file('secrets.properties', 'pw=from-file\n');
    const conn = kafkaConnectionFrom(
      {
        'config.providers': 'env,file',
        'config.providers.env.class': 'org.apache.kafka.common.config.provider.EnvVarConfigProvider',
        'config.providers.file.class': 'org.apache.kafka.common.config.provider.FileConfigProvider',
        'security.protocol': 'SASL_PLAINTEXT',
        'sasl.mechanism': 'PLAIN',
        'sasl.jaas.config': `org.apache.kafka.common.security.plain.PlainLoginModule required username="\${env:KUSER}" password="\${file:${secrets}:pw}";`,
      },
      { env: { KUSER: 'alice' } },
    );
    expect(conn.sasl).toEqual({ mechanism: 'plain', username: 'alice', password: 'from-file' });
    expect(
      refused({
        'security.protocol': 'SASL_SSL',
        'sasl.mechanism': 'PLAIN',
        'sasl.jaas.config': '${env:NOPE}',
      }),
    ).toBe(
      '--kafka-config client.properties: sasl.jaas.config refers to environment variable NOPE, which is not set',
    );
  });

  it('should refuse by name what it does not support (exit 2), never quoting a secret', () => {
    expect(refused({ 'sasl.kerberos.service.name': 'kafka' })).toMatch(
      /property sasl\.kerberos\.service\.name is not supported/,
    );
    expect(refused({ 'sasl.oauthbearer.token.endpoint.url': 'https://idp' })).toMatch(
      /taskmanager\.oauthbearer\.token\.command/,
    );
    expect(refused({ 'security.protocol': 'SASL_SSL', 'sasl.mechanism': 'GSSAPI' })).toMatch(
      /sasl\.mechanism GSSAPI is not supported/,
    );
    expect(refused({ 'security.protocol': 'SASL_SSL' })).toMatch(/sasl\.mechanism GSSAPI is not supported/);
    expect(refused({ 'security.protocol': 'TLS' })).toMatch(/security\.protocol TLS is not one of/);
    expect(refused({ 'ssl.truststore.location': '/x' })).toMatch(
      /security\.protocol is PLAINTEXT \(no TLS\)/,
    );
    expect(
      refused({
        'security.protocol': 'SSL',
        'ssl.truststore.type': 'JKS',
        'ssl.truststore.location': file('t.jks', 'x'),
      }),
    ).toMatch(/ssl\.truststore\.type JKS is not supported/);
    const badJaas = refused({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'SCRAM-SHA-256',
      'sasl.jaas.config': `${SCRAM} required username="u" password="hunter2`,
    });
    expect(badJaas).toMatch(/the value of password has no closing quote/);
    expect(badJaas).not.toContain('hunter2');
    expect(
      refused({
        'security.protocol': 'SASL_SSL',
        'sasl.mechanism': 'PLAIN',
        'sasl.jaas.config': `${SCRAM} required username="u" password="hunter2";`,
      }),
    ).toMatch(/uses .*ScramLoginModule, but sasl.mechanism PLAIN needs .*PlainLoginModule/);
  });

  it('should read a PEM keystore (key and chain in one file) and a PKCS12 truststore made by keytool', () => {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-keyout',
        join(dir, 'k.pem'),
        '-out',
        join(dir, 'c.pem'),
        '-days',
        '1',
        '-subj',
        '/CN=client',
      ],
      { stdio: 'ignore' },
    );
    execFileSync('sh', [
      '-c',
      `cat ${dir}/k.pem ${dir}/c.pem > ${dir}/keystore.pem && chmod 644 ${dir}/keystore.pem`,
    ]);
    execFileSync(
      'keytool',
      [
        '-importcert',
        '-noprompt',
        '-alias',
        'ca',
        '-file',
        join(dir, 'c.pem'),
        '-keystore',
        join(dir, 'trust.p12'),
        '-storetype',
        'PKCS12',
        '-storepass',
        'changeit',
      ],
      { stdio: 'ignore' },
    );
    const warnings: string[] = [];
    const conn = kafkaConnectionFrom(
      {
        'security.protocol': 'SSL',
        'ssl.keystore.type': 'PEM',
        'ssl.keystore.location': join(dir, 'keystore.pem'),
        'ssl.truststore.type': 'PKCS12',
        'ssl.truststore.location': join(dir, 'trust.p12'),
        'ssl.truststore.password': 'changeit',
      },
      { warn: (m) => warnings.push(m) },
    );
    expect(String(conn.ssl?.key)).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(String(conn.ssl?.cert)).toMatch(/^-----BEGIN CERTIFICATE-----/);
    expect(conn.ssl?.ca).toHaveLength(1);
    expect(warnings).toEqual([
      `keystore ${join(dir, 'keystore.pem')} can be read by others (mode 0644): chmod 600 it`,
    ]);
    expect(
      refused({
        'security.protocol': 'SSL',
        'ssl.truststore.type': 'PKCS12',
        'ssl.truststore.location': join(dir, 'trust.p12'),
        'ssl.truststore.password': 'wrong',
      }),
    ).toMatch(/cannot read the PKCS12 truststore \(wrong ssl\.truststore\.password\)/);
  });

  it('should warn when the config file can be read by others', () => {
    const warnings: string[] = [];
    const p = file('open.properties', 'security.protocol=PLAINTEXT\n', 0o644);
    readKafkaConfig(p, { warn: (m) => warnings.push(m) });
    expect(warnings).toEqual([`Kafka client config ${p} can be read by others (mode 0644): chmod 600 it`]);
  });
});

describe('OAUTHBEARER tokens', () => {
  const jwt = (exp: number) =>
    `${Buffer.from('{"alg":"RS256"}').toString('base64url')}.${Buffer.from(JSON.stringify({ sub: 's', exp })).toString('base64url')}.sig`;

  it('should read a plain token, a JWT expiry and the JSON of a signer', () => {
    expect(parseToken('abc\n')).toEqual({ value: 'abc' });
    expect(parseToken(jwt(2000))).toEqual({ value: jwt(2000), expiresAt: 2_000_000 });
    expect(parseToken('{"token":"t","expiryTime":5000}')).toEqual({ value: 't', expiresAt: 5000 });
  });

  it('should fetch again at 80 % of the lifetime, not before', async () => {
    let now = 1_000_000;
    let n = 0;
    const p = file('token.sh', '', 0o700);
    writeFileSync(p, `#!/bin/sh\necho '{"token":"t'$(cat ${dir}/n)'","expiryTime":1100000}'\n`);
    const bump = () => writeFileSync(join(dir, 'n'), String(++n));
    bump();
    const source = new OAuthTokenSource({ command: p }, () => now);
    expect(await source.token()).toEqual({ value: 't1' });
    bump();
    now += 79_000;
    expect(await source.token()).toEqual({ value: 't1' });
    now += 2_000;
    expect(await source.token()).toEqual({ value: 't2' });
  });

  it('should say which source failed without the token', async () => {
    const source = new OAuthTokenSource({ command: 'echo nope >&2; exit 3' });
    await expect(source.token()).rejects.toThrow('OAUTHBEARER: the token command failed (exit code 3): nope');
    const conn = kafkaConnectionFrom({
      'security.protocol': 'SASL_SSL',
      'sasl.mechanism': 'OAUTHBEARER',
      'sasl.jaas.config':
        'org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="taskapi";',
    });
    expect(conn.principal).toBe('taskapi');
    const sasl = conn.sasl as { oauthBearerProvider: () => Promise<{ value: string }> };
    const token = (await sasl.oauthBearerProvider()).value;
    expect(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString())).toMatchObject({
      sub: 'taskapi',
    });
  });
});
