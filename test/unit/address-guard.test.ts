import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { AddressGuard, isInternalAddress } from '../../src/processors/address-guard.js';
import { webhookProcessor } from '../../src/processors/webhook-processor.js';
import { recordingLogger } from './helpers/recording-logger.js';
import { silentLogger } from '../../src/shared/logger.js';
import type { Logger } from '../../src/shared/logger.js';
import type { TaskMessage } from '../../src/shared/codecs/task-message.js';

const task = (payload: unknown): TaskMessage => ({
  v: 1,
  taskId: 'hook@2026-11-22T10:00:00.000Z',
  scheduleId: 'hook',
  processor: 'webhook',
  payload,
  scheduledFor: '2026-11-22T10:00:00.000Z',
  firedAt: '2026-11-22T10:00:00.000Z',
  scheduler: { group: 'g', host: 'h', pid: 1 },
});

const ctx = (logger: Logger = silentLogger) => ({
  signal: new AbortController().signal,
  logger,
  attempt: 1,
  source: { topic: 't', partition: 0, offset: '0' },
  progress: () => undefined,
  output: () => undefined,
});

describe('when the webhook guard judges an address', () => {
  it.each([
    ['192.0.0.8', 'IETF protocol assignments 192.0.0.0/24'],
    ['198.18.0.1', 'benchmarking 198.18.0.0/15'],
    ['198.19.255.254', 'benchmarking 198.18.0.0/15'],
    ['240.0.0.1', 'reserved 240.0.0.0/4'],
    ['255.255.255.255', 'broadcast, in 240.0.0.0/4'],
    ['64:ff9b::a00:1', 'NAT64 of 10.0.0.1'],
    ['64:ff9b::127.0.0.1', 'NAT64 of 127.0.0.1'],
    ['64:ff9b::a9fe:a9fe', 'NAT64 of the metadata address 169.254.169.254'],
    ['::ffff:808:808', 'IPv4-mapped, whatever it embeds'],
    ['::ffff:7f00:1', 'IPv4-mapped 127.0.0.1 in hex form'],
    ['::ffff:10.1.2.3', 'IPv4-mapped 10.1.2.3'],
    ['::a00:1', 'IPv4-compatible 10.0.0.1'],
    ['::8.8.8.8', 'IPv4-compatible, whatever it embeds'],
  ])('should refuse %s (%s)', (address) => {
    expect(isInternalAddress(address)).toBe(true);
  });

  it.each([
    ['8.8.8.8', 'a public IPv4 address'],
    ['64:ff9b::808:808', 'NAT64 of the public 8.8.8.8'],
    ['2606:4700:4700::1111', 'a public IPv6 address'],
    ['198.20.0.1', 'just past 198.18.0.0/15'],
    ['192.0.1.1', 'just past 192.0.0.0/24'],
  ])('should let %s through (%s)', (address) => {
    expect(isInternalAddress(address)).toBe(false);
  });

  it('should let an allowed CIDR reach the IPv4 that a NAT64 address embeds', () => {
    const guard = new AddressGuard(['10.1.0.0/16']);
    expect(() => guard.check('64:ff9b::a01:203', '64:ff9b::a01:203')).not.toThrow();
    expect(() => guard.check('64:ff9b::a02:203', '64:ff9b::a02:203')).toThrow(/a private address/);
  });
});

describe('when a webhook is refused', () => {
  it('should name the host as given and why, never the address it resolves to, and log the address', async () => {
    const lines: string[] = [];
    const err = await webhookProcessor({ allow: [] })
      .process(task({ url: 'http://localhost:9/hook' }), ctx(recordingLogger(lines)))
      .catch((e: unknown) => e as Error);
    expect(err).toMatchObject({ code: 'NON_RETRIABLE' });
    expect((err as Error).message).toMatch(
      /^refused: localhost resolves to a loopback address .*--webhook-allow localhost/,
    );
    expect((err as Error).message).not.toMatch(/127\.0\.0\.1|::1/);
    expect(lines.join('\n')).toMatch(/localhost.*(127\.0\.0\.1|::1)/);
  });

  it('should say what an address in the URL is, by its class', async () => {
    const err = await webhookProcessor({ allow: [] })
      .process(task({ url: 'http://[64:ff9b::a9fe:a9fe]/latest/meta-data' }), ctx())
      .catch((e: unknown) => e as Error);
    expect((err as Error).message).toMatch(/^refused: 64:ff9b::a9fe:a9fe is a link-local address/);
  });
});

describe('when a webhook payload sets a Host header', () => {
  const servers: Array<ReturnType<typeof createServer>> = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('should send the URL’s host instead, keeping the other headers', async () => {
    const seen: Array<{ host?: string; custom?: string | string[] }> = [];
    const server = createServer((req, res) => {
      seen.push({ host: req.headers.host, custom: req.headers['x-custom'] });
      res.end('ok');
    });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    await webhookProcessor({ allow: ['127.0.0.1'] }).process(
      task({
        url: `http://127.0.0.1:${port}/hook`,
        headers: { HOST: 'metadata.google.internal', 'X-Custom': 'kept' },
      }),
      ctx(),
    );
    expect(seen).toEqual([{ host: `127.0.0.1:${port}`, custom: 'kept' }]);
  });
});
