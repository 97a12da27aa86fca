import { brokers } from './kafka.js';
import { startCli } from './processes.js';
import type { RunningCli } from './processes.js';
import { waitFor } from './wait-for.js';

export interface ApiAnswer<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/** A started `taskapi` (the built CLI on a free port) and a small client for it. */
export class Api {
  constructor(
    readonly cli: RunningCli,
    readonly url: string,
  ) {}

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiAnswer<T>> {
    const res = await fetch(`${this.url}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
    });
    const text = await res.text();
    let parsed: unknown = undefined;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }
}

/** Starts `taskapi --port 0` with the given flags and waits until it listens; `--history 1m` keeps starts quick. */
export async function startApi(args: string[]): Promise<Api> {
  const cli = startCli('taskapi', ['-b', brokers(), '--port', '0', '--history', '1m', ...args]);
  let url = '';
  await waitFor(
    () => {
      const m = /taskapi listening on (http:\/\/[^/\s]+)\//.exec(cli.output);
      if (m) url = m[1]!;
      return m !== null;
    },
    { timeoutMs: 60_000, what: `taskapi listening\n${cli.output.slice(-2000)}` },
  );
  return new Api(cli, url);
}
