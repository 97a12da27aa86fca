import { readFileSync } from 'node:fs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { USERS_TOPIC } from '../../src/api/auth/user-view.js';
import { COMMANDS_TOPIC } from '../../src/shared/codecs/scheduler-control.js';
import { SCHEDULER_STATE_TOPIC } from '../../src/shared/codecs/scheduler-state.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';
import { TASKS_TOPIC } from '../../src/shared/tasks/definition.js';
import { startApi, TEST_ADMIN } from './helpers/api.js';
import { TopicReader, uniqueName } from './helpers/kafka.js';
import { killAll, runCli, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { SecureBroker } from './helpers/secure-broker.js';
import type { User } from './helpers/secure-broker.js';
import { EVENTS, scheduleFile } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';

/**
 * A secured broker (SASL_SSL with SCRAM users, a locally made CA, StandardAuthorizer) where every program runs as
 * its own principal with only the ACLs scripts/create-acls.sh grants (the table in docs/acls.md).
 */
const mustSucceed = (r: { code: number; out: string }) => {
  if (r.code !== 0) throw new Error(r.out);
};

describe('on a secured broker (SASL_SSL, SCRAM, ACLs)', () => {
  const broker = new SecureBroker();
  const topic = uniqueName('secure-tasks');
  let reader: TopicReader;
  /** Every CLI started here: their output is searched for secrets at the end. */
  const outputs: RunningCli[] = [];
  const cli = (...args: Parameters<typeof startCli>) => {
    const c = startCli(...args);
    outputs.push(c);
    return c;
  };
  const as = (user: User) => ['-b', broker.creds.bootstrap, '--kafka-config', broker.config(user)];

  beforeAll(async () => {
    await broker.start();
    await broker.script('create-topics.sh', ['--topic', topic, '--partitions', '3']).then(mustSucceed);
    await broker
      .script('create-acls.sh', [
        '--task-topic',
        topic,
        '--scheduler-principal',
        'User:taskscheduler',
        '--consumer-principal',
        'User:taskconsumer',
        '--api-principal',
        'User:taskapi',
        '--operator-principal',
        'User:operator',
      ])
      .then(mustSucceed);
    reader = await new TopicReader([topic, EVENTS, `${topic}.dlq`], () => broker.kafka('admin')).start();
  }, 180_000);

  afterEach(killAll);
  afterAll(async () => {
    await reader?.stop();
    await broker.stop();
  });

  const finished = (prefix: string) =>
    reader.values<StatusEvent>(EVENTS, (e) => e.status === 'FINISHED' && e.scheduleId?.startsWith(prefix));

  it('should fire the old tool schedule file, finish every task, and serve taskapi and dlq replay with each program as its own principal', async () => {
    const prefix = uniqueName('sec');
    const file = await scheduleFile(topic, [
      [`${prefix}-a`, '* * * * * *'],
      [`${prefix}-b`, '* * * * * *'],
    ]);
    const scheduler = cli('taskscheduler', [...as('taskscheduler'), '-schedule', file]);
    const consumer = cli('taskconsumer', [...as('taskconsumer'), '-topic', topic]);
    await waitFor(() => new Set(finished(prefix).map((e) => e.scheduleId)).size === 2, {
      timeoutMs: 60_000,
      what: `FINISHED tasks of both entries\n${scheduler.output.slice(-1500)}\n${consumer.output.slice(-1500)}`,
    });
    expect(scheduler.output).toMatch(/Kafka 127\.0\.0\.1:\d+ \(SASL_SSL SCRAM-SHA-512 as taskscheduler\)/);

    // taskapi (its own principal) with a scheduler for API tasks: a task created over HTTP, triggered, finishes.
    const apiScheduler = cli('taskscheduler', [...as('taskscheduler'), '-s', 'none']);
    const api = await startApi([...as('taskapi'), '--topic', topic]);
    outputs.push(api.cli);
    const id = `${prefix}-api`;
    const created = await api.call('POST', '/api/v1/tasks', {
      id,
      processor: 'NoopProcessor',
      schedule: { every: '1h' },
    });
    expect(created.status, created.text).toBe(201);
    const trig = await api.call<{ taskId: string }>('POST', `/api/v1/tasks/${id}/trigger`);
    expect(trig.status, trig.text).toBe(202);
    await waitFor(() => finished(prefix).some((e) => e.taskId === trig.body.taskId), {
      timeoutMs: 30_000,
      what: `the triggered API task FINISHED\n${api.cli.output.slice(-1500)}\n${apiScheduler.output.slice(-1000)}`,
    });

    // A task no processor knows is dead-lettered; the operator replays it from the shell.
    const bad = cli('taskscheduler', [
      ...as('taskscheduler'),
      '-schedule',
      await scheduleFile(topic, [[`${prefix}-dlq`, '* * * * * *']], 'NoSuchProcessor'),
      '--group',
      `taskscheduler-${prefix}-dlq`,
    ]);
    await waitFor(() => reader.records.some((r) => r.topic === `${topic}.dlq`), {
      timeoutMs: 30_000,
      what: `a dead-lettered task\n${bad.output.slice(-1000)}`,
    });
    bad.signal('SIGTERM');
    await bad.exited;
    const onTopic = () => reader.values<TaskMessage>(topic, (t) => t.scheduleId === `${prefix}-dlq`).length;
    const before = onTopic();
    const replay = await runCli('taskconsumer', ['dlq', 'replay', ...as('operator'), '-t', topic, '--all']);
    expect(replay.code, replay.output).toBe(0);
    await waitFor(() => onTopic() > before, { timeoutMs: 20_000, what: 'the replayed task on its topic' });

    // Nothing any program printed holds a password (the admin's login included).
    const all = outputs.map((c) => c.output).join('\n') + replay.output;
    for (const secret of [...broker.secrets(), TEST_ADMIN.initialPassword, TEST_ADMIN.password])
      expect(all.includes(secret), 'a secret in the output').toBe(false);
  });

  it('should refuse writes a principal has no ACL for, and apply none of them', async () => {
    const marker = uniqueName('forged');
    const attempts: Array<[User, string]> = [
      ['taskconsumer', USERS_TOPIC],
      ['taskconsumer', COMMANDS_TOPIC],
      ['taskconsumer', SCHEDULER_STATE_TOPIC],
      ['taskapi', SCHEDULER_STATE_TOPIC],
      ['taskscheduler', USERS_TOPIC],
      ['nobody', TASKS_TOPIC],
    ];
    for (const [user, target] of attempts) {
      const producer = broker.kafka(user).producer({ idempotent: true, maxInFlightRequests: 1 });
      // Refused at InitProducerId (no Write on any topic: cluster authorization) or at the write itself.
      const err = await producer
        .connect()
        .then(() =>
          producer.send({ topic: target, acks: -1, messages: [{ key: marker, value: '{"role":"admin"}' }] }),
        )
        .then(
          () => undefined,
          (e: unknown) => e as { type?: string; message?: string; name?: string },
        );
      await producer.disconnect();
      expect(`${user} writing ${target}: ${err?.type ?? err?.message}`).toMatch(
        /: (TOPIC_AUTHORIZATION_FAILED|CLUSTER_AUTHORIZATION_FAILED|Not authorized to access topics: \[Topic authorization failed\])$/,
      );
    }
    // A scheduler group's transactional id belongs to the scheduler principal only: the same InitProducerId that
    // works for it fails for another (kafkajs reports the refused FindCoordinator as "Failed to find …").
    const takeOver = async (user: User) => {
      const p = broker.kafka(user).producer({
        transactionalId: 'taskscheduler-x/state-0',
        maxInFlightRequests: 1,
        idempotent: true,
      });
      const outcome = await p
        .connect()
        .then(() => p.transaction())
        .then(
          (tx) => tx.abort().then(() => 'ok'),
          (e: unknown) => (e as Error).message,
        );
      await p.disconnect();
      return outcome;
    };
    expect(await takeOver('taskscheduler')).toBe('ok');
    expect(await takeOver('taskconsumer')).toMatch(/coordinator|authorization/i);

    const admin = new TopicReader([USERS_TOPIC, COMMANDS_TOPIC, SCHEDULER_STATE_TOPIC, TASKS_TOPIC], () =>
      broker.kafka('admin'),
    );
    await admin.start();
    try {
      for (const t of [USERS_TOPIC, COMMANDS_TOPIC, SCHEDULER_STATE_TOPIC, TASKS_TOPIC])
        await admin.caughtUp(t);
      expect(admin.records.filter((r) => r.key === marker)).toEqual([]);
    } finally {
      await admin.stop();
    }
  });

  it('should stop with one clear line (exit 1) on a wrong password, an untrusted CA or plaintext to the TLS port', async () => {
    const props = readFileSync(broker.config('taskscheduler'), 'utf8');
    const wrong = broker.writeConfig('wrong-password', [
      props.replace(/password="[^"]*"/, 'password="not-it"'),
    ]);
    const untrusted = broker.writeConfig('untrusted', [
      props.replace(/ssl\.truststore\.location=.*/, `ssl.truststore.location=${broker.creds.otherCa}`),
    ]);
    const noSasl = broker.writeConfig('tls-without-sasl', [
      'security.protocol=SSL',
      `ssl.truststore.location=${broker.creds.ca}`,
    ]);
    const b = broker.creds.bootstrap;
    const cases: Array<[Parameters<typeof runCli>[0], string[], RegExp]> = [
      [
        'taskscheduler',
        ['-b', b, '--kafka-config', wrong, '-s', 'none'],
        new RegExp(
          `^taskscheduler: Kafka broker ${b} refused user taskscheduler \\(SCRAM-SHA-512\\): authentication failed`,
        ),
      ],
      [
        'taskconsumer',
        ['-b', b, '--kafka-config', wrong, '-t', topic],
        /^taskconsumer: Kafka broker .* refused user taskscheduler \(SCRAM-SHA-512\)/,
      ],
      [
        'taskapi',
        ['users', 'list', '-b', b, '--kafka-config', untrusted],
        new RegExp(
          `^taskapi: TLS to Kafka broker ${b} failed: its certificate is not signed by a trusted CA`,
        ),
      ],
      [
        'taskscheduler',
        ['-b', b, '-s', 'none'],
        new RegExp(`^taskscheduler: Kafka broker ${b} speaks TLS but security.protocol is PLAINTEXT`),
      ],
      [
        'taskapi',
        ['users', 'list', '-b', b, '--kafka-config', noSasl],
        new RegExp(
          `^taskapi: Kafka broker ${b} closed the connection \\(SSL\\): its listener probably requires SASL`,
        ),
      ],
      [
        'taskconsumer',
        [
          'status',
          '-b',
          broker.creds.mtlsBootstrap,
          '--kafka-config',
          broker.config('operator'),
          '-t',
          topic,
        ],
        new RegExp(
          `^taskconsumer: Kafka broker ${broker.creds.mtlsBootstrap} refused a TLS client without a certificate: its listener wants mutual TLS`,
        ),
      ],
    ];
    for (const [bin, args, line] of cases) {
      const r = await runCli(bin, args, 30_000);
      const errors = r.output.split('\n').filter((l) => l.trim() !== '');
      expect([r.code, errors.length, errors[0]], r.output).toEqual([1, 1, expect.stringMatching(line)]);
    }
    // Kafka's own tools, through create-topics.sh without a config, against the TLS port say the same.
    const plain = await broker.script('create-topics.sh', ['--topic', topic], false);
    expect(plain.code, plain.out).toBe(3);
    expect(plain.out).toMatch(
      new RegExp(`the broker at ${b} speaks TLS: set security.protocol=SSL or SASL_SSL`),
    );
  });

  it('should connect with PLAIN, SCRAM-SHA-256, OAUTHBEARER from a token command, and mutual TLS (PEM and PKCS12)', async () => {
    const pw = (u: User) => broker.creds.users[u]!.password;
    const tls = [
      'ssl.truststore.type=PKCS12',
      `ssl.truststore.location=${broker.creds.truststore.path}`,
      `ssl.truststore.password=\${env:TRUSTSTORE_PASSWORD}`,
    ];
    const configs: Array<[string, string[], string]> = [
      [
        'plain',
        [
          'security.protocol=SASL_SSL',
          'sasl.mechanism=PLAIN',
          `sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="operator" password="${pw('operator')}";`,
          ...tls,
        ],
        broker.creds.bootstrap,
      ],
      [
        'scram256',
        [
          'security.protocol=SASL_SSL',
          'sasl.mechanism=SCRAM-SHA-256',
          `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="operator" password="${pw('operator')}";`,
          ...tls,
        ],
        broker.creds.bootstrap,
      ],
      [
        'oauth',
        [
          'security.protocol=SASL_SSL',
          'sasl.mechanism=OAUTHBEARER',
          'sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;',
          `taskmanager.oauthbearer.token.command=node -e "const b=(o)=>Buffer.from(JSON.stringify(o)).toString('base64url');const t=Math.floor(Date.now()/1000);console.log(b({alg:'none'})+'.'+b({sub:'operator',iat:t,exp:t+600})+'.')"`,
          ...tls,
        ],
        broker.creds.bootstrap,
      ],
      ['mtls-pem', readFileSync(broker.creds.mtlsConfig, 'utf8').split('\n'), broker.creds.mtlsBootstrap],
      [
        'mtls-p12',
        [
          'security.protocol=SSL',
          'ssl.keystore.type=PKCS12',
          `ssl.keystore.location=${broker.creds.operatorCert.p12}`,
          `ssl.keystore.password=${broker.creds.operatorCert.p12Password}`,
          `ssl.truststore.location=${broker.creds.ca}`,
        ],
        broker.creds.mtlsBootstrap,
      ],
    ];
    for (const [name, lines, bootstrap] of configs) {
      const r = await runCli(
        'taskconsumer',
        ['status', '-b', bootstrap, '--kafka-config', broker.writeConfig(name, lines), '-t', topic],
        30_000,
        { TRUSTSTORE_PASSWORD: broker.creds.truststore.password },
      );
      expect([name, r.code], r.output).toEqual([name, 0]);
    }
  });
});
