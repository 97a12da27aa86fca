import type { RunningCli } from './processes.js';

/** The base URL of a CLI's metrics port (started with `--metrics-port 0`), from its start-up log line. */
export async function opsUrl(cli: RunningCli): Promise<string> {
  const re = /metrics and health on http:\/\/[^:\s]+:(\d+)\//;
  await cli.waitForOutput(re);
  return `http://127.0.0.1:${re.exec(cli.output)?.[1] ?? '?'}`;
}

/** One scrape of `/metrics`, as series text (`name{labels}`) to value. */
export async function scrape(base: string): Promise<Map<string, number>> {
  const res = await fetch(`${base}/metrics`);
  if (res.status !== 200) throw new Error(`GET ${base}/metrics: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    out.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return out;
}

/** Sum of every series of a metric whose labels include all of `labels`. */
export function total(
  series: Map<string, number>,
  name: string,
  labels: Record<string, string> = {},
): number {
  let sum = 0;
  for (const [key, value] of series) {
    const brace = key.indexOf('{');
    if ((brace === -1 ? key : key.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([k, v]) => key.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/** GET a health route: its status and JSON body. */
export async function health(
  base: string,
  path: '/healthz' | '/readyz',
): Promise<{ status: number; body: { ready?: boolean; reason?: string } }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: (await res.json()) as { ready?: boolean; reason?: string } };
}
