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
