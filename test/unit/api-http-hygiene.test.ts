import { readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/shared/logger.js';
import type { Logger } from '../../src/shared/logger.js';
import { apiApp } from './helpers/api-app.js';
import type { ApiApp } from './helpers/api-app.js';

const UI = resolve(import.meta.dirname, '../../src/api/ui');

let running: ApiApp | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function start(o: Parameters<typeof apiApp>[0] = {}): Promise<ApiApp> {
  running = await apiApp(o);
  return running;
}

describe('when taskapi answers a browser', () => {
  it('should send the security headers with the dashboard, the API and its errors', async () => {
    const { app } = await start();
    const answers = await Promise.all(
      ['/ui', '/ui/app.js', '/ui/style.css', '/api/healthz', '/api/v1/users', '/no-such-page'].map((url) =>
        app.inject({ method: 'GET', url }),
      ),
    );
    expect(answers.map((r) => r.statusCode)).toEqual([200, 200, 200, 200, 401, 404]);
    for (const r of answers) {
      const csp = String(r.headers['content-security-policy']);
      expect(csp.split(/;\s*/)).toEqual(
        expect.arrayContaining(["default-src 'self'", "frame-ancestors 'none'"]),
      );
      expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
      expect(r.headers['x-content-type-options']).toBe('nosniff');
      expect(r.headers['referrer-policy']).toBe('no-referrer');
    }
  });

  it('should serve a dashboard with no inline style or script, so the policy needs no unsafe-inline', () => {
    const inline: string[] = [];
    for (const name of readdirSync(UI)) {
      const text = readFileSync(resolve(UI, name), 'utf8');
      const patterns: Array<[RegExp, string]> = [
        [/\sstyle\s*=/gi, 'style attribute'],
        [/<style[\s>]/gi, '<style> block'],
        [/<script(?![^>]*\ssrc=)[^>]*>/gi, 'inline <script>'],
        [/\son[a-z]+\s*=\s*["'`$]/gi, 'inline event handler attribute'],
        [/javascript:/gi, 'javascript: URL'],
      ];
      for (const [re, what] of patterns)
        for (const m of text.matchAll(re)) inline.push(`${name}: ${what} at ${JSON.stringify(m[0])}`);
    }
    expect(inline).toEqual([]);
  });
});

describe('when a client sends its request slowly', () => {
  it('should answer 408 and close the connection once the request timeout passed', async () => {
    const { app } = await start({ requestTimeoutMs: 300 });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as AddressInfo;
    const t0 = Date.now();
    const answer = await new Promise<string>((done, fail) => {
      const socket = connect(port, '127.0.0.1', () =>
        // 100 bytes announced, 6 sent: the rest never comes.
        socket.write(
          'POST /api/v1/users/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":1',
        ),
      );
      let text = '';
      socket.on('data', (d: Buffer) => (text += d.toString()));
      socket.on('close', () => done(text));
      socket.on('error', fail);
      setTimeout(() => {
        socket.destroy();
        fail(new Error(`the connection was still open after 5 s (answer so far: ${JSON.stringify(text)})`));
      }, 5000).unref();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it('should bound the request, idle connections and keep-alive by default', async () => {
    const { app } = await start();
    expect({
      request: app.server.requestTimeout,
      headers: app.server.headersTimeout,
      idle: app.server.timeout,
      keepAlive: app.server.keepAliveTimeout,
    }).toEqual({ request: 30_000, headers: 30_000, idle: 60_000, keepAlive: 72_000 });
  });
});

describe('when /api/readyz is asked while taskapi is not ready', () => {
  it('should say not ready without the brokers or Kafka’s error, and log the reason once', async () => {
    const reason = 'Kafka unreachable: Connection error: connect ECONNREFUSED 10.20.30.40:9093';
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (m: string) => void warnings.push(m) };
    const { app } = await start({
      health: { health: () => ({ ready: false, reason }), tasks: () => 3 },
      logger,
    });
    const first = await app.inject({ method: 'GET', url: '/api/readyz' });
    await app.inject({ method: 'GET', url: '/api/readyz' });
    expect(first.statusCode).toBe(503);
    expect(first.body).not.toMatch(/10\.20\.30\.40|9093|ECONNREFUSED|Connection error/);
    expect(first.json<{ detail: string }>().detail).toMatch(/^not ready/);
    expect(warnings.filter((w) => w.includes(reason))).toHaveLength(1);
  });
});
