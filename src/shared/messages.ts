/**
 * What every record of docs/messages-and-topics.md shares. Each record kind has its own codec in `codecs/` (task message,
 * task event, scheduler state, DLQ headers, scheduler commands): build and read records only through those.
 */

/** Who produced a message or event. */
export interface Origin {
  host: string;
  pid: number;
}

/** JSON as UTF-8 bytes (records whose kind has no codec of its own: task definitions, users). */
export function encodeJson(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value), 'utf8');
}

/** A record value that is JSON passing `valid`; undefined for a tombstone, bytes that are no JSON, or JSON that fails. */
export function parseValidJson<T>(value: Buffer | null, valid: (data: unknown) => data is T): T | undefined {
  if (value === null) return undefined;
  try {
    const data: unknown = JSON.parse(value.toString('utf8'));
    return valid(data) ? data : undefined;
  } catch {
    return undefined;
  }
}
