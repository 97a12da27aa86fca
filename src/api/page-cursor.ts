import { ApiError } from './problem.js';

/** A page cursor: the sort key of the last item of a page, opaque to clients (base64url of a JSON array). */
export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

/** The key of a cursor made by {@link encodeCursor} with `parts` strings; 400 for anything else. */
export function decodeCursor(text: string, parts: number): string[] {
  try {
    const v: unknown = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
    if (Array.isArray(v) && v.length === parts && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    // answered below
  }
  throw new ApiError(400, 'cursor is not one this API returned', [
    { pointer: '/cursor', detail: 'is not a nextCursor value from a previous page' },
  ]);
}
