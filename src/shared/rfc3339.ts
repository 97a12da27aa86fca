/** `2026-12-01T09:00:00Z`, `2026-12-01T10:00:00.250+01:00`: date, `T`, time, optional fraction, offset required. */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$/;

/** The last text parsed and its outcome: a record's `runAt` is parsed when it is checked, then for its spec. */
let lastText: string | undefined;
let lastMs: number | undefined;

/** Epoch ms of an RFC 3339 date-time (an offset is required), or undefined when it is not one or not a real date. */
export function parseRfc3339(text: string): number | undefined {
  if (text !== lastText) {
    lastMs = parse(text);
    lastText = text;
  }
  return lastMs;
}

function parse(text: string): number | undefined {
  if (!RFC3339.test(text)) return undefined;
  const ms = Date.parse(text.toUpperCase());
  if (!Number.isFinite(ms)) return undefined;
  // Date.parse rolls 2026-02-30 over to March: compare the calendar date it read with the one written.
  const [y, mo, d] = text.slice(0, 10).split('-').map(Number);
  const offset = /([+-])(\d{2}):(\d{2})$/.exec(text);
  const shift = offset
    ? (offset[1] === '-' ? -1 : 1) * (Number(offset[2]) * 60 + Number(offset[3])) * 60_000
    : 0;
  const local = new Date(ms + shift);
  if (local.getUTCFullYear() !== y || local.getUTCMonth() + 1 !== mo || local.getUTCDate() !== d)
    return undefined;
  return ms;
}
