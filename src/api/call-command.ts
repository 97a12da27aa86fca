import { AppError, errorMessage } from '../shared/errors.js';

export interface CallOptions {
  url: string;
  token?: string;
  data?: string;
  ifMatch?: string;
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
  (res.ok ? process.stdout : process.stderr).write(
    `${res.status} ${res.statusText}${etag ? ` (ETag ${etag})` : ''}\n${shown}${shown.endsWith('\n') || shown === '' ? '' : '\n'}`,
  );
  return res.ok ? 0 : 1;
}
