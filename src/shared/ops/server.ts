import { createServer } from 'node:http';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { errorMessage } from '../errors.js';
import type { Logger } from '../logger.js';

/** Whether a process does its share of the work now; `reason` says what is missing when it does not. */
export interface Readiness {
  ready: boolean;
  reason: string;
  [detail: string]: unknown;
}

export interface OpsServerOptions {
  port: number;
  host: string;
  registry: Registry;
  readiness(): Readiness;
  logger: Logger;
}

export interface OpsServer {
  /** The bound port (the one asked for, or the one the OS picked for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

/**
 * The operator's port of a process: `/metrics` (Prometheus text format), `/healthz` (the process is alive and its
 * event loop answers) and `/readyz` (200 when it does its share of the work, else 503; JSON bodies either way).
 */
export async function startOpsServer(o: OpsServerOptions): Promise<OpsServer> {
  const started = Date.now();
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(405, { error: 'only GET' });
    if (path === '/healthz') return json(200, { status: 'ok', uptimeSeconds: (Date.now() - started) / 1000 });
    if (path === '/readyz') {
      const r = o.readiness();
      return json(r.ready ? 200 : 503, r);
    }
    if (path === '/metrics') {
      o.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': o.registry.contentType });
          res.end(text);
        },
        (err: unknown) => json(500, { error: `collecting metrics failed: ${errorMessage(err)}` }),
      );
      return;
    }
    json(404, { error: `no route ${path}; try /metrics, /healthz or /readyz` });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    throw new Error(`cannot serve metrics on ${o.host}:${o.port}: ${errorMessage(err)}`);
  });
  const port = (server.address() as AddressInfo).port;
  o.logger.info(`metrics and health on http://${o.host}:${port}/metrics, /healthz, /readyz`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
