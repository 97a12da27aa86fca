/**
 * The write rules of `taskmanager.tasks`, applied the same way by every reader (each `taskapi` instance, each
 * scheduler), so all of them agree on each task's current definition without any coordination but the log's order.
 *
 * A `taskapi` write carries in its headers what it expects: `tm-op: create` (the id must not exist) or
 * `update`/`delete` with `tm-base` = the version (record offset) it was based on. A record whose expectation no
 * longer holds when it is read in log order lost a race and is rejected by every reader; its writer answers 409 and
 * appends a `repair` record (a copy of the current state carrying its version in `tm-version`), so the last record of
 * the key, the one compaction keeps, is again the accepted state. Records without `tm-op` (an operator's kcat or
 * older tools) apply unconditionally. A key met first as an update (its history compacted away) is taken as is.
 */

export type TaskOp = 'create' | 'update' | 'delete' | 'repair';

export const OP_HEADER = 'tm-op';
export const BASE_HEADER = 'tm-base';
export const VERSION_HEADER = 'tm-version';
/** Who made a change: the user name, or `token:<id>` for an API token (`retirement` for a retired one-shot). */
export const ACTOR_HEADER = 'tm-actor';
/** The instance that wrote a record: it, and only it, waits for the record's outcome. */
export const WRITER_HEADER = 'tm-writer';

/** What a reader knows about a key. */
export interface KeyState {
  /** Version of the current state: the offset of the record that set it (or the version a repair carried). */
  version: string;
  /** False after an accepted delete. */
  present: boolean;
}

export type TaskLogOutcome =
  | { kind: 'put'; version: string }
  | { kind: 'delete'; version: string }
  /** A repair that restated the current state: nothing changes. */
  | { kind: 'same' }
  | { kind: 'rejected'; reason: string };

/** The outcome of one record given the key's state before it (`undefined`: the key was never seen). */
export function foldTaskRecord(
  prev: KeyState | undefined,
  r: { offset: string; value: Buffer | null; headers: Record<string, string> },
): TaskLogOutcome {
  const op = r.headers[OP_HEADER] as TaskOp | undefined;
  const put = (version: string): TaskLogOutcome =>
    r.value === null ? { kind: 'delete', version } : { kind: 'put', version };
  switch (op) {
    case undefined:
      return put(r.offset);
    case 'create':
      return prev?.present ? { kind: 'rejected', reason: 'the id exists' } : put(r.offset);
    case 'update':
    case 'delete': {
      if (prev === undefined) return put(r.offset);
      if (!prev.present) return { kind: 'rejected', reason: 'the task was deleted' };
      const base = r.headers[BASE_HEADER];
      return base === prev.version
        ? put(r.offset)
        : { kind: 'rejected', reason: `based on version ${base ?? 'none'}, current is ${prev.version}` };
    }
    case 'repair': {
      const version = r.headers[VERSION_HEADER] ?? r.offset;
      if (prev === undefined) return put(version);
      return prev.version === version
        ? { kind: 'same' }
        : { kind: 'rejected', reason: `repair of version ${version}, current is ${prev.version}` };
    }
    default:
      return { kind: 'rejected', reason: `unknown ${OP_HEADER} ${JSON.stringify(op)}` };
  }
}

/** The state after a record (unchanged when it was rejected). */
export function nextKeyState(prev: KeyState | undefined, o: TaskLogOutcome): KeyState | undefined {
  if (o.kind === 'put') return { version: o.version, present: true };
  if (o.kind === 'delete') return { version: o.version, present: false };
  return prev;
}
