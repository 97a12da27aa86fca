import { AppError, errorMessage } from '../shared/errors.js';

export interface CallOptions {
  url: string;
  /** The bearer token (from {@link callToken}: never a command-line argument). */
  token?: string;
  data?: string;
  ifMatch?: string;
}

/** Where `taskapi call` takes the token from. */
export const TOKEN_ENV = 'TASKMANAGER_TOKEN';

/**
 * The token for `taskapi call`: the first line of stdin with `--token-stdin`, else TASKMANAGER_TOKEN, else none
 * (public routes answer; the others say 401). Never a `--token` value: the process list shows arguments to every user
 * of the host, so that form is refused.
 */
export async function callToken(
  o: { token?: string; tokenStdin?: boolean },
  env: NodeJS.ProcessEnv,
  stdinLine: () => Promise<string>,
): Promise<string | undefined> {
  if (o.token !== undefined)
    throw new AppError(
      'USAGE',
      `--token puts the token in the process list, where other users see it: set ${TOKEN_ENV}, or pipe it: echo "$TOKEN" | taskapi call … --token-stdin`,
    );
  if (o.tokenStdin) {
    const token = (await stdinLine()).trim();
    if (!token) throw new AppError('USAGE', '--token-stdin: stdin held no token (its first line is empty)');
    return token;
  }
  return env[TOKEN_ENV] || undefined;
}

/**
 * `taskapi call METHOD PATH`: one request to a running taskapi with a bearer token, its JSON answer printed.
 * Resolves to the exit code: 0 for 2xx, 1 for any other answer (the problem document is printed all the same).
 */
export async function callApi(method: string, path: string, o: CallOptions): Promise<number> {
  // Not `//host/…`: that would send the token to another host.
  if (!path.startsWith('/') || path.startsWith('//'))
    throw new AppError(
      'USAGE',
      `the path is one on taskapi, like /api/v1/tasks (got ${JSON.stringify(path)})`,
    );
  if (o.data !== undefined)
    try {
      JSON.parse(o.data);
    } catch (err) {
      throw new AppError('USAGE', `--data is not JSON: ${errorMessage(err)}`);
    }
  let res: Response;
  try {
    res = await fetch(new URL(path, o.url), {
      method: method.toUpperCase(),
      headers: {
        ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
        ...(o.data === undefined ? {} : { 'content-type': 'application/json' }),
        ...(o.ifMatch ? { 'if-match': o.ifMatch } : {}),
      },
      ...(o.data === undefined ? {} : { body: o.data }),
    });
  } catch (err) {
    throw new AppError('USAGE', `cannot reach ${o.url}: ${errorMessage(err)}`);
  }
  const text = await res.text();
  let shown = text;
  try {
    shown = JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    // not JSON (204): as it came
  }
  const etag = res.headers.get('etag');
  const hint =
    res.status === 401 && !o.token
      ? `no token was sent: set ${TOKEN_ENV}, or pipe one to --token-stdin\n`
      : '';
  (res.ok ? process.stdout : process.stderr).write(
    `${res.status} ${res.statusText}${etag ? ` (ETag ${etag})` : ''}\n${shown}${shown.endsWith('\n') || shown === '' ? '' : '\n'}${hint}`,
  );
  return res.ok ? 0 : 1;
}
