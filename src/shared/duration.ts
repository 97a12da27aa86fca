const HOUR = 3_600_000;
const MINUTE = 60_000;
const SECOND = 1000;
/** Units of a Go-style duration (`1h30m`, `5s`, `250ms`), largest first, in ms. */
const UNITS: ReadonlyArray<[string, number]> = [
  ['h', HOUR],
  ['m', MINUTE],
  ['s', SECOND],
  ['ms', 1],
];

/**
 * Parses `5s`, `1m30s`, `2h`, `1500ms` (units h, m, s, ms, largest first, each once) or a whole number of ms.
 * Returns undefined for anything else.
 */
export function parseDuration(text: string | number): number | undefined {
  if (typeof text === 'number') return Number.isSafeInteger(text) && text > 0 ? text : undefined;
  const t = text.trim();
  if (/^\d+$/.test(t)) return parseDuration(Number(t));
  const m = /^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$/.exec(t);
  if (!m || t === '') return undefined;
  const [, h, min, s, ms] = m;
  const total = Number(h ?? 0) * HOUR + Number(min ?? 0) * MINUTE + Number(s ?? 0) * SECOND + Number(ms ?? 0);
  return total > 0 && Number.isSafeInteger(total) ? total : undefined;
}

/** `1m30s`, `5s`, `250ms`: the shortest form `parseDuration` reads back. */
export function formatDuration(ms: number): string {
  let rest = ms;
  let out = '';
  for (const [unit, size] of UNITS) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${unit}`;
    rest -= n * size;
  }
  return out || '0ms';
}
