/**
 * HTTP measurements of the API benchmark: sequential request latencies (one request in flight, keep-alive, the
 * global fetch) and a load run with autocannon. The same code measures `taskapi` and the bare baseline server, so
 * the client's cost is the same on both sides.
 */
import autocannon from 'autocannon';
import { Pool } from 'undici';
import { sleep } from '../../test/kit/wait.js';

/** Polls `GET <base>/api/readyz` until it answers 200; resolves with `performance.now()` at that answer. */
export async function whenReady(base: string, timeoutMs: number, alive: () => boolean): Promise<number> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(`${base}/api/readyz`);
      await res.arrayBuffer();
      if (res.status === 200) return performance.now();
    } catch {
      // not listening yet: the view is still being built
    }
    if (!alive()) throw new Error(`${base} exited before /api/readyz answered 200`);
    if (performance.now() > deadline) throw new Error(`${base}/api/readyz not 200 within ${timeoutMs} ms`);
    await sleep(10);
  }
}

export interface Timed<T> {
  ms: number;
  status: number;
  body: T;
}

/** The bearer token every request of the benchmark sends (taskapi is closed by default; the bare server ignores it). */
let authorization: Record<string, string> = {};

export function useBearer(token: string): void {
  authorization = { authorization: `Bearer ${token}` };
}

/** One request, timed from the call to the whole body parsed as JSON. */
export async function timedJson<T>(url: string, init: RequestInit = {}): Promise<Timed<T>> {
  const t0 = performance.now();
  const res = await fetch(url, {
    ...init,
    headers: { ...authorization, ...(init.headers as Record<string, string>) },
  });
  const body = (await res.json()) as T;
  return { ms: performance.now() - t0, status: res.status, body };
}

/**
 * GETs `next(i)` for i in [0, warmup + n) one after another; returns the latencies of the last `n` (the first
 * `warmup` warm the JIT and the connection). Any answer but 200 throws: a latency of an error page means nothing.
 */
export async function sequentialGets(
  base: string,
  next: (i: number) => string,
  n: number,
  warmup: number,
): Promise<number[]> {
  const ms: number[] = [];
  for (let i = 0; i < warmup + n; i++) {
    const r = await timedJson<unknown>(`${base}${next(i)}`);
    if (r.status !== 200) throw new Error(`GET ${next(i)}: ${r.status} ${JSON.stringify(r.body)}`);
    if (i >= warmup) ms.push(r.ms);
  }
  return ms;
}

export interface LoadResult {
  /** 2xx answers per second over the run. */
  okPerS: number;
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  durationS: number;
}

/** autocannon against `base`: `connections` keep-alive connections for `durationS`, each request GET `pathOf()`. */
export async function load(
  base: string,
  pathOf: () => string,
  connections: number,
  durationS: number,
): Promise<LoadResult> {
  const r = await autocannon({
    url: base,
    connections,
    duration: durationS,
    headers: authorization,
    requests: [{ method: 'GET', setupRequest: (req) => ({ ...req, path: pathOf() }) }],
  });
  return {
    okPerS: r['2xx'] / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    durationS: r.duration,
  };
}

export interface PostLoad {
  /** Answers with the expected status per second over the run. */
  okPerS: number;
  /** Each request's latency, ms (call to body read). */
  ms: number[];
  /** Answers with another status, and the first of them. */
  failed: number;
  firstFailure?: string;
  wallMs: number;
}

/**
 * POSTs `body(i)` as JSON to `<base><path>` for i in [from, from + n), `clients` requests in flight at once over an
 * undici Pool of as many keep-alive connections (each client sends its next request when its answer came).
 */
export async function concurrentPosts(
  base: string,
  path: string,
  body: (i: number) => unknown,
  { from, n, clients, expect = 201 }: { from: number; n: number; clients: number; expect?: number },
): Promise<PostLoad> {
  const pool = new Pool(base, { connections: clients, pipelining: 1 });
  const ms: number[] = [];
  let failed = 0;
  let firstFailure: string | undefined;
  let next = from;
  const t0 = performance.now();
  const client = async (): Promise<void> => {
    while (next < from + n) {
      const i = next++;
      const s = performance.now();
      const res = await pool.request({
        path,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...authorization },
        body: JSON.stringify(body(i)),
      });
      const text = await res.body.text();
      ms.push(performance.now() - s);
      if (res.statusCode !== expect && failed++ === 0)
        firstFailure = `${res.statusCode} ${text.slice(0, 300)}`;
    }
  };
  try {
    await Promise.all(Array.from({ length: clients }, client));
  } finally {
    await pool.close();
  }
  const wallMs = performance.now() - t0;
  return { okPerS: ((n - failed) / wallMs) * 1000, ms, failed, firstFailure, wallMs };
}
