import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { IncomingMessage, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { brokers, createTopics, deleteTopics, TopicReader, uniqueName } from './helpers/kafka.js';
import type { ReadRecord } from './helpers/kafka.js';
import { killAll, ROOT, startCli } from './helpers/processes.js';
import type { RunningCli } from './helpers/processes.js';
import { EVENTS, publishTasks, taskMessage } from './helpers/tasks.js';
import { waitFor } from '../kit/wait.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';

/** A task topic with its DLQ, a reader of both and of the events, and a consumer of it with the given flags. */
function useConsumerFixture() {
  const fx = { topic: '', prefix: '', reader: undefined as unknown as TopicReader };
  beforeEach(async () => {
    fx.topic = uniqueName('work');
    fx.prefix = `${uniqueName('w')}-`;
    await createTopics([fx.topic]);
    fx.reader = await new TopicReader([`${fx.topic}.dlq`, { topic: EVENTS, fromEnd: true }]).start();
  });
  afterEach(async () => {
    await killAll();
    await fx.reader.stop();
    await deleteTopics([fx.topic]);
  });
  /** A consumer of the fixture's topic (fast retries, 3 attempts; later flags win), with extra environment. */
  const consumerWith = (env: Record<string, string>, ...flags: string[]): RunningCli =>
    startCli(
      'taskconsumer',
      [
        '-b',
        brokers(),
        '-t',
        fx.topic,
        '-g',
        uniqueName('g'),
        '--retry-base-ms',
        '50',
        '--retry-max-ms',
        '200',
        '--max-attempts',
        '3',
        ...flags,
      ],
      { env },
    );
  const consumer = (...flags: string[]): RunningCli => consumerWith({}, ...flags);
  /** Publishes one task per payload; resolves to their taskIds, in order. */
  const publish = async (processor: string, payloads: unknown[]): Promise<string[]> => {
    const tasks = payloads.map((p, i) => taskMessage(`${fx.prefix}${i}`, processor, p, Date.now() + i));
    await publishTasks(fx.topic, tasks);
    return tasks.map((t) => t.taskId);
  };
  const events = (taskId: string): StatusEvent[] =>
    fx.reader.values<StatusEvent>(EVENTS, (e) => e.taskId === taskId);
  const last = (taskId: string, status: StatusEvent['status']): StatusEvent | undefined =>
    events(taskId)
      .filter((e) => e.status === status)
      .at(-1);
  const dlq = (taskId: string): ReadRecord | undefined =>
    fx.reader.records.find((r) => r.topic === `${fx.topic}.dlq` && r.headers['task-id'] === taskId);
  // A dead-lettered task has settled once both its DLQ record and its final event were read: they are written
  // together, but the reader may see either topic first.
  const settled = (ids: string[], timeoutMs = 30_000) =>
    waitFor(() => ids.every((id) => last(id, 'FINISHED') || (dlq(id) && last(id, 'FAILED')?.final)), {
      timeoutMs,
      what: `tasks ${ids.join(', ')} settled`,
    });
  return { fx, consumer, consumerWith, publish, events, last, dlq, settled };
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('WebhookProcessor through the real consumer', () => {
  const t = useConsumerFixture();
  let server: Server;
  const seen: Array<{ path: string; key: string | undefined; body: string; at: number }> = [];
  let hits = new Map<string, number>();

  beforeEach(() => {
    seen.length = 0;
    hits = new Map();
    server = createServer((req: IncomingMessage, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const path = req.url ?? '/';
        const n = (hits.get(path) ?? 0) + 1;
        hits.set(path, n);
        seen.push({ path, key: req.headers['idempotency-key'] as string | undefined, body, at: Date.now() });
        if (path === '/ok')
          res.writeHead(200, { 'content-type': 'application/json' }).end('{"received":true}');
        else if (path === '/flaky') res.writeHead(n === 1 ? 503 : 200).end(n === 1 ? 'busy' : 'ok now');
        else if (path === '/slow-down')
          res.writeHead(n === 1 ? 429 : 200, n === 1 ? { 'retry-after': '2' } : {}).end();
        else if (path === '/big') res.writeHead(200).end('y'.repeat(100_000));
        else if (path === '/echo-auth')
          res.writeHead(401).end(`no entry with authorization: ${req.headers.authorization ?? ''}`);
        else res.writeHead(404).end('no such hook');
      });
    });
  });
  afterEach(() => new Promise<void>((r) => server.close(() => r())));

  it('should succeed on 2xx, retry 503 and 429 (after Retry-After), dead-letter 404 and bad payloads, and send the taskId as Idempotency-Key', async () => {
    const host = await listen(server);
    t.consumer('--webhook-allow', '127.0.0.1');
    const ids = await t.publish('webhook', [
      { url: `http://${host}/ok`, body: { hello: 'world' } },
      { url: `http://${host}/flaky` },
      { url: `http://${host}/missing`, method: 'POST' },
      { url: `http://${host}/slow-down`, method: 'PUT', body: 'plain' },
      { url: `http://${host}/big` },
      { method: 'GET' },
    ]);
    const [ok, flaky, missing, , big, bad] = ids as [string, string, string, string, string, string];
    await t.settled(ids);
    expect(t.last(ok, 'FINISHED')?.result).toEqual({ status: 200, body: '{"received":true}' });
    expect(seen.find((s) => s.path === '/ok')).toMatchObject({ key: ok, body: '{"hello":"world"}' });
    expect(t.last(flaky, 'FINISHED')).toMatchObject({ attempt: 2, result: { status: 200, body: 'ok now' } });
    expect(t.last(flaky, 'FAILED')?.result).toEqual({ status: 503, body: 'busy' });
    expect(seen.filter((s) => s.path === '/flaky').map((s) => s.key)).toEqual([flaky, flaky]);
    expect(t.dlq(missing)?.headers['dlq-reason']).toBe('non-retriable');
    expect(t.last(missing, 'FAILED')).toMatchObject({
      attempt: 1,
      final: true,
      result: { status: 404, body: 'no such hook' },
    });
    const slowCalls = seen.filter((s) => s.path === '/slow-down');
    expect(slowCalls).toHaveLength(2);
    expect(slowCalls[1]!.at - slowCalls[0]!.at).toBeGreaterThanOrEqual(1900);
    const bigResult = t.last(big, 'FINISHED')?.result as { body: string; truncated: boolean };
    expect([bigResult.body.length, bigResult.truncated]).toEqual([2048, true]);
    expect(t.dlq(bad)?.headers['dlq-reason']).toBe('non-retriable');
    expect(t.last(bad, 'FAILED')?.error).toContain('payload.url is required');
  });

  it('should send secrets from the consumer, keep them out of events and the DLQ, and dead-letter a missing one', async () => {
    const host = await listen(server);
    const token = `Bearer ${uniqueName('tok')}`;
    const dir = mkdtempSync(join(tmpdir(), 'secrets-'));
    writeFileSync(join(dir, 'from_file'), 'file-secret-value\n');
    t.consumerWith(
      { TASKMANAGER_SECRET_HOOK_TOKEN: token },
      '--webhook-allow',
      '127.0.0.1',
      '--secrets-dir',
      dir,
    );
    const [echoed, missing] = (await t.publish('webhook', [
      {
        url: `http://${host}/echo-auth`,
        headers: { Authorization: { $secret: 'HOOK_TOKEN' } },
        body: { key: { $secret: 'from_file' } },
      },
      { url: `http://${host}/ok`, headers: { Authorization: { $secret: 'NOT_SET' } } },
    ])) as [string, string];
    await t.settled([echoed, missing]);
    // The request carried the values; what reached Kafka carries none of them.
    expect(seen.find((s) => s.path === '/echo-auth')?.body).toBe('{"key":"file-secret-value"}');
    expect(t.last(echoed, 'FAILED')).toMatchObject({
      final: true,
      result: { status: 401, body: 'no entry with authorization: [redacted]' },
    });
    const written = t.fx.reader.records
      .map((r) => `${r.value ?? ''} ${JSON.stringify(r.headers)}`)
      .join('\n');
    expect([written.includes(token), written.includes('file-secret-value')]).toEqual([false, false]);
    expect(JSON.parse(t.dlq(echoed)!.value!).payload.headers).toEqual({
      Authorization: { $secret: 'HOOK_TOKEN' },
    });
    expect(t.dlq(missing)?.headers['dlq-reason']).toBe('non-retriable');
    expect(t.last(missing, 'FAILED')).toMatchObject({
      attempt: 1,
      error: expect.stringMatching(
        /secret NOT_SET \(payload\.headers\.Authorization\) is not set on this consumer/,
      ),
    });
    expect(seen.filter((s) => s.path === '/ok')).toEqual([]);
  });

  it('should refuse a loopback address unless --webhook-allow names it, and say how', async () => {
    const host = await listen(server);
    const c = t.consumer();
    const [refused] = await t.publish('WebhookProcessor', [{ url: `http://${host}/ok` }]);
    await t.settled([refused!]);
    expect(t.dlq(refused!)?.headers['dlq-reason']).toBe('non-retriable');
    expect(t.last(refused!, 'FAILED')?.error).toMatch(
      /refused: 127\.0\.0\.1 is a loopback.*--webhook-allow 127\.0\.0\.1/,
    );
    const viaName = await t.publish('webhook', [{ url: `http://localhost:${host.split(':')[1]}/ok` }]);
    await t.settled(viaName);
    expect(t.last(viaName[0]!, 'FAILED')?.error).toMatch(
      /localhost resolves to .* --webhook-allow localhost/,
    );
    expect(seen).toEqual([]);
    c.signal('SIGTERM');
    await c.exited;
    t.consumer('--webhook-allow', 'localhost');
    const allowed = await t.publish('webhook', [{ url: `http://localhost:${host.split(':')[1]}/ok` }]);
    await t.settled(allowed);
    expect(t.last(allowed[0]!, 'FINISHED')?.result).toMatchObject({ status: 200 });
  });
});

describe('EmailProcessor through the real consumer', () => {
  const t = useConsumerFixture();
  let smtp: SMTPServer;
  const mails: Array<{ from: string; to: string[]; data: string }> = [];

  beforeEach(() => {
    mails.length = 0;
    smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onRcptTo(address, _session, callback) {
        if (address.address.startsWith('bounce@')) {
          const err = new Error('mailbox unavailable') as Error & { responseCode: number };
          err.responseCode = 550;
          return callback(err);
        }
        callback();
      },
      onData(stream, session, callback) {
        let data = '';
        stream.on('data', (c: Buffer) => (data += c.toString()));
        stream.on('end', () => {
          mails.push({
            from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
            to: session.envelope.rcptTo.map((r) => r.address),
            data,
          });
          callback();
        });
      },
    });
  });
  afterEach(() => new Promise<void>((r) => smtp.close(() => r())));

  it('should deliver with the old services’ field names, put the message id in the event, and dead-letter a 550', async () => {
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    const port = (smtp.server.address() as AddressInfo).port;
    t.consumer('--smtp-url', `smtp://127.0.0.1:${port}`, '--smtp-from', 'tasks@example.com');
    const [sent, bounced, noSubject] = (await t.publish('email', [
      { to: 'user@example.com', title: 'Welcome', body: 'Hello from taskmanager' },
      { to: ['bounce@example.com'], subject: 'Lost', text: 'nobody' },
      { to: 'user@example.com', body: 'no subject' },
    ])) as [string, string, string];
    await t.settled([sent, bounced, noSubject]);
    expect(mails).toHaveLength(1);
    expect(mails[0]).toMatchObject({ from: 'tasks@example.com', to: ['user@example.com'] });
    expect(mails[0]!.data).toContain('Subject: Welcome');
    expect(mails[0]!.data).toContain('Hello from taskmanager');
    expect(mails[0]!.data.toLowerCase()).toContain(`x-task-id: ${sent}`.toLowerCase());
    const result = t.last(sent, 'FINISHED')?.result as { messageId: string; accepted: string[] };
    expect(result.messageId).toMatch(/^<.+>$/);
    expect(result.accepted).toEqual(['user@example.com']);
    expect(t.dlq(bounced)?.headers['dlq-reason']).toBe('non-retriable');
    expect(t.last(bounced, 'FAILED')).toMatchObject({ attempt: 1, result: { smtpCode: 550 } });
    expect(t.last(noSubject, 'FAILED')?.error).toMatch(/invalid payload/);
  });
});

describe('CommandProcessor through the real consumer', () => {
  const t = useConsumerFixture();

  it('should run only listed programs and images, refusing the rest for good with one line naming task and what', async () => {
    t.consumer('--enable-command', '--command-programs', 'echo', '--command-images', 'busybox');
    const [ok, shell, image] = (await t.publish('command', [
      { command: ['echo', 'allowed'] },
      { command: ['sh', '-c', 'echo not allowed'] },
      { command: ['echo'], image: 'evil/miner:latest' },
    ])) as [string, string, string];
    await t.settled([ok, shell, image]);
    expect(t.last(ok, 'FINISHED')?.result).toMatchObject({ stdout: 'allowed\n' });
    expect(
      [shell, image].map((id) => [t.dlq(id)?.headers['dlq-reason'], t.dlq(id)?.headers['dlq-error']]),
    ).toEqual([
      [
        'non-retriable',
        `CommandProcessor: task ${shell} refused: program "sh" is not in --command-programs (echo)`,
      ],
      [
        'non-retriable',
        `CommandProcessor: task ${image} refused: image "evil/miner:latest" is not in --command-images (busybox)`,
      ],
    ]);
    expect(t.last(shell, 'FAILED')).toMatchObject({ attempt: 1, final: true });
  });

  it('should run nothing on the host with --command-require-image', async () => {
    t.consumer('--enable-command', '--command-require-image');
    const [id] = await t.publish('command', [{ command: ['echo', 'on the host'] }]);
    await t.settled([id!]);
    expect(t.dlq(id!)?.headers['dlq-error']).toBe(
      `CommandProcessor: task ${id} refused: it would run "echo" on the host, and this consumer runs only containers (--command-require-image): give the payload an image`,
    );
    expect(t.last(id!, 'FINISHED')).toBeUndefined();
  });

  it('should stay off without --enable-command, and say how to turn it on', async () => {
    t.consumer();
    const [id] = await t.publish('command', [{ command: ['true'] }]);
    await t.settled([id!]);
    expect(t.last(id!, 'FAILED')?.error).toMatch(/CommandProcessor is off.*--enable-command/);
  });

  it('should capture output, honour exit codes, limit output, pass only allowed env, and kill the whole group on timeout', async () => {
    const pidFile = join(tmpdir(), `${uniqueName('orphan')}.pid`);
    t.consumerWith(
      { SECRET_X: 'must-not-leak' },
      '--retry-max-ms',
      '100',
      '--max-attempts',
      '2',
      '--enable-command',
      '--non-retriable-exit-codes',
      '3',
    );
    const ids = (await t.publish('CommandProcessor', [
      { command: ['sh', '-c', 'echo hello; echo oops >&2'] },
      { command: ['sh', '-c', 'exit 3'] },
      { command: ['sh', '-c', 'exit 1'] },
      { command: ['sh', '-c', "head -c 200000 /dev/zero | tr '\\0' x"] },
      { command: ['sh', '-c', 'echo "[$SECRET_X][$FOO]"'], env: { FOO: 'bar' } },
      { command: ['sh', '-c', `sleep 30 & echo $! > ${pidFile}; wait`], timeoutMs: 1000 },
      { command: ['no-such-program-xyz'] },
    ])) as string[];
    const [ok, code3, code1, big, env, slow, missing] = ids as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    await t.settled(ids, 60_000);
    expect(t.last(ok, 'FINISHED')?.result).toMatchObject({
      exitCode: 0,
      stdout: 'hello\n',
      stderr: 'oops\n',
    });
    expect(t.last(code3, 'FAILED')).toMatchObject({ attempt: 1, final: true, result: { exitCode: 3 } });
    expect(t.last(code1, 'FAILED')).toMatchObject({
      attempt: 2,
      final: true,
      dlqReason: 'attempts-exhausted',
    });
    const out = t.last(big, 'FINISHED')?.result as { stdout: string; truncated: { stdoutBytes: number } };
    expect([out.stdout.length, out.truncated.stdoutBytes]).toEqual([65536, 200000 - 65536]);
    expect(t.last(env, 'FINISHED')?.result).toMatchObject({ stdout: '[][bar]\n' });
    expect(t.last(slow, 'FAILED')?.error).toMatch(/timed out after 1000 ms/);
    // The background sleep of the group was killed with it: no orphan left.
    const orphan = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(
      () =>
        !existsSync(`/proc/${orphan}`) || readFileSync(`/proc/${orphan}/stat`, 'utf8').split(' ')[2] === 'Z',
      {
        timeoutMs: 10_000,
        what: `process ${orphan} gone`,
      },
    );
    expect(t.last(missing, 'FAILED')?.error).toMatch(/cannot start "no-such-program-xyz"/);
  });
});

/**
 * The container tests need a Docker engine: scripts/docker-test-engine.sh installs docker.io with apt when missing
 * and starts a private dockerd. In CI that must work; elsewhere, where it cannot (no root, no apt), they are
 * skipped with the reason printed.
 */
function dockerEngine(): { host?: string; why?: string } {
  const r = spawnSync('bash', [join(ROOT, 'scripts/docker-test-engine.sh'), 'start'], {
    encoding: 'utf8',
    timeout: 600_000,
  });
  const host = /^DOCKER_HOST=(\S+)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status === 0 && host) return { host };
  const why = `${(r.stderr ?? '').trim().split('\n').at(-1) ?? ''} (exit ${r.status})`;
  if (process.env.CI)
    throw new Error(`the container tests need a Docker engine in CI, and it did not start: ${why}`);
  return { why };
}

describe('CommandProcessor in a container', () => {
  const t = useConsumerFixture();
  let engine: { host?: string; why?: string } = {};
  beforeAll(() => {
    engine = dockerEngine();
    if (!engine.host) console.warn(`SKIPPING the container tests: no Docker engine: ${engine.why}`);
  }, 660_000);
  afterAll(() => {
    spawnSync('bash', [join(ROOT, 'scripts/docker-test-engine.sh'), 'stop'], { timeout: 60_000 });
  });

  it('should run in a fresh container: output and exit code, no network, the memory limit, removed on timeout', async (ctx) => {
    if (!engine.host) return ctx.skip();
    t.consumerWith(
      { DOCKER_HOST: engine.host },
      '--max-attempts',
      '1',
      '--enable-command',
      '--container-memory',
      '32m',
    );
    const image = 'taskmanager-busybox:test';
    const ids = (await t.publish('command', [
      { image, command: ['sh', '-c', 'echo in-container; id -u; exit 0'] },
      { image, command: ['sh', '-c', 'exit 7'] },
      {
        image,
        command: [
          'sh',
          '-c',
          'ls /sys/class/net; wget -T 2 -q -O- http://1.1.1.1/ && echo reached || echo no-network',
        ],
      },
      {
        image,
        command: ['sh', '-c', 'head -c 200000000 /dev/zero | tail -n 1 > /dev/null && echo survived'],
      },
      { image, command: ['sleep', '60'], timeoutMs: 2000 },
    ])) as string[];
    const [hello, seven, net, memory, slow] = ids as [string, string, string, string, string];
    await t.settled(ids, 120_000);
    expect(t.last(hello, 'FINISHED')?.result).toMatchObject({
      exitCode: 0,
      stdout: 'in-container\n65534\n',
      image,
    });
    expect(t.last(seven, 'FAILED')?.result).toMatchObject({ exitCode: 7 });
    expect(t.last(net, 'FINISHED')?.result).toMatchObject({ stdout: 'lo\nno-network\n' });
    // Killed by the kernel for going over 32 MiB: 137 (SIGKILL), never "survived".
    expect(t.last(memory, 'FAILED')?.result).toMatchObject({ exitCode: 137 });
    const timedOut = t.last(slow, 'FAILED')?.result as { container: string };
    expect(t.last(slow, 'FAILED')?.error).toMatch(/timed out after 2000 ms/);
    await waitFor(
      () => {
        const ps = spawnSync(
          'docker',
          ['-H', engine.host!, 'ps', '-a', '-q', '--filter', `name=${timedOut.container}`],
          { encoding: 'utf8' },
        );
        return ps.status === 0 && ps.stdout.trim() === '';
      },
      { timeoutMs: 20_000, what: `container ${timedOut.container} removed` },
    );
  }, 240_000);
});
