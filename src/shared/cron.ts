import { CronExpressionParser } from 'cron-parser';
import type { CronExpression } from 'cron-parser';
import type { CompiledSchedule } from './schedule/compiled.js';
import { zonedFormatter } from './zoned-format.js';

const FIELD_NAMES_6 = ['second', 'minute', 'hour', 'day of month', 'month', 'day of week'] as const;

/** A problem with a cron spec, in words an operator can act on. */
export class CronSpecError extends Error {}

/** Zones found valid: building an Intl.DateTimeFormat costs ≈ 40 µs, and a view rebuild checks 100k definitions. */
const validZones = new Set<string>();

export function isValidTimeZone(zone: string): boolean {
  if (validZones.has(zone)) return true;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
  } catch {
    return false;
  }
  if (validZones.size < 10_000) validZones.add(zone);
  return true;
}

function parse(spec: string, zone: string): CronExpression {
  return CronExpressionParser.parse(spec, { tz: zone, currentDate: new Date(0) });
}

function describeParserError(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  const range = /got value (\S+) expected range (\d+)-(\d+)/.exec(msg);
  if (range) return `must be ${range[2]}-${range[3]} (got ${range[1]})`;
  return msg.replace(/^(Validation|Constraint) error, /, '');
}

/**
 * Finds which field of a spec is wrong, so the message can say "second must be 0-59" rather than the
 * parser's generic text. Each field is tried alone with the others as `*`.
 */
function locateFieldError(fields: string[]): string | undefined {
  const names = fields.length === 6 ? FIELD_NAMES_6 : FIELD_NAMES_6.slice(1);
  for (let i = 0; i < fields.length; i++) {
    const probe = fields.map((f, j) => (j === i ? f : '*')).join(' ');
    try {
      parse(probe, 'UTC');
    } catch (err) {
      return `${names[i]} ${describeParserError(err)}`;
    }
  }
  return undefined;
}

/** Checks a spec: 6 fields (seconds first), 5 fields (seconds = 0) or an `@macro`. Throws {@link CronSpecError}. */
const validSpecs = new Set<string>();

export function validateCronSpec(spec: string): void {
  const trimmed = spec.trim();
  // A file of 100k entries shares a few thousand specs: parse each once (~50 µs).
  if (validSpecs.has(trimmed)) return;
  if (trimmed === '') throw new CronSpecError('is empty');
  const fields = trimmed.split(/\s+/);
  if (!trimmed.startsWith('@') && fields.length !== 5 && fields.length !== 6) {
    throw new CronSpecError(
      `has ${fields.length} fields; expected 6 (seconds first) or 5 (minute precision)`,
    );
  }
  try {
    parse(trimmed, 'UTC');
    if (validSpecs.size < 100_000) validSpecs.add(trimmed);
  } catch (err) {
    const located = trimmed.startsWith('@') ? undefined : locateFieldError(fields);
    throw new CronSpecError(located ?? describeParserError(err));
  }
}

/** The wall-clock time of an instant in a zone, expressed as if it were UTC (for matching and offsets). */
function wallAsUtc(ms: number, zone: string): number {
  const f = zonedFormatter(zone, 'en-US');
  const p: Record<string, number> = {};
  for (const part of f.formatToParts(new Date(ms)))
    if (part.type !== 'literal') p[part.type] = Number(part.value);
  return (
    Date.UTC(p.year ?? 1970, (p.month ?? 1) - 1, p.day ?? 1, p.hour ?? 0, p.minute ?? 0, p.second ?? 0) +
    (ms % 1000)
  );
}

function offsetAt(ms: number, zone: string): number {
  return wallAsUtc(ms, zone) - ms;
}

/**
 * The first instant at or after which the zone's offset is `offsetAt(hi)`, for an offset change in (lo, hi]. Zones
 * change offset on a whole second, so the search runs on whole seconds: from a fractional `lo` it used to answer
 * the transition plus `lo`'s milliseconds (a spring-forward fire at 03:00:00.892 for a question asked at .892).
 */
function transitionIn(lo: number, hi: number, zone: string): number {
  const target = offsetAt(hi, zone);
  lo = Math.floor(lo / 1000) * 1000;
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetAt(mid, zone) === target) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * Applies the DST rule of docs/schedule-file.md#time-zones-and-dst on top of cron-parser in zones with DST: a
 * wall-clock time skipped by a spring-forward gap fires once, at the first instant after the gap (cron-parser would shift it by the gap,
 * e.g. 02:30 → 03:30); a time repeated by fall-back fires once at its first occurrence (cron-parser's own
 * behaviour); interval specs keep firing in real time.
 */
function withDstRule(
  spec: string,
  zone: string,
  expr: CronExpression,
): (afterMs: number) => number | undefined {
  const wall = parse(spec, 'UTC');
  const matchesWall = (wallMs: number): boolean => wall.includesDate(new Date(wallMs));
  const raw = (t: number): number | undefined => {
    expr.reset(new Date(t));
    try {
      return expr.next().getTime();
    } catch (err) {
      if (err instanceof Error && /out of the time ?span range/i.test(err.message)) return undefined;
      throw err;
    }
  };
  return (afterMs) => {
    let after = afterMs;
    for (let guard = 0; guard < 1000; guard++) {
      const n = raw(after);
      const before = offsetAt(after, zone);
      const horizon = n ?? after + 366 * 86_400_000;
      if (offsetAt(horizon, zone) > before) {
        // A spring-forward gap lies in (after, horizon]: did the spec want a wall-clock time inside it?
        const t = transitionIn(after, horizon, zone);
        const gapStart = wallAsUtc(t - 1000, zone) + 1000;
        const gapEnd = wallAsUtc(t, zone);
        wall.reset(new Date(gapStart - 1));
        const inGap = wall.next().getTime() < gapEnd;
        if (inGap && t > afterMs && (n === undefined || t <= n)) return t;
      }
      if (n === undefined) return undefined;
      // A result whose wall-clock time the spec does not match is cron-parser shifting a skipped time: not ours.
      if (matchesWall(wallAsUtc(n, zone))) return n;
      after = n;
    }
    throw new Error(
      `cron ${JSON.stringify(spec)} in ${zone}: no fire time found after ${new Date(afterMs).toISOString()}`,
    );
  };
}

const cache = new Map<string, CompiledSchedule>();

/** The last two answers of a next-instant function, each good for the range from what was asked to the answer. */
export class NextMemo {
  private after0 = NaN;
  private next0: number | undefined;
  private after1 = NaN;
  private next1: number | undefined;
  /** The slot a miss overwrites: the one not used last. */
  private older: 0 | 1 = 0;

  constructor(private readonly next: (afterMs: number) => number | undefined) {}

  nextAfter(afterMs: number): number | undefined {
    if (afterMs >= this.after0 && (this.next0 === undefined || afterMs < this.next0)) {
      this.older = 1;
      return this.next0;
    }
    if (afterMs >= this.after1 && (this.next1 === undefined || afterMs < this.next1)) {
      this.older = 0;
      return this.next1;
    }
    const n = this.next(afterMs);
    if (this.older === 0) {
      this.after0 = afterMs;
      this.next0 = n;
      this.older = 1;
    } else {
      this.after1 = afterMs;
      this.next1 = n;
      this.older = 0;
    }
    return n;
  }
}

function utcNext(expr: CronExpression): (afterMs: number) => number | undefined {
  return (afterMs) => {
    // The expression object is shared and stateful; reset-then-next is synchronous, so no interleaving.
    expr.reset(new Date(afterMs));
    try {
      return expr.next().getTime();
    } catch (err) {
      // cron-parser throws when no instant exists in its search range (e.g. `0 0 0 30 2 *` is refused at
      // parse, but a far end date is not): the entry simply never fires again.
      if (err instanceof Error && /out of the time ?span range|Invalid explicit/i.test(err.message))
        return undefined;
      throw err;
    }
  };
}

/** The next-instant function of (spec, zone), with nothing remembered (compileCron remembers). */
export function cronNext(spec: string, zone: string): (afterMs: number) => number | undefined {
  const expr = parse(spec.trim(), zone);
  return zone !== 'UTC' && zone !== 'Etc/UTC' ? withDstRule(spec.trim(), zone, expr) : utcNext(expr);
}

/**
 * Compiles (spec, zone) once and shares it: parsing costs ~50 µs, next-instant math ~8 µs (UTC) to ~30 µs
 * (zoned), so parsing per fire would dominate the loop. Callers validate first; this throws on a bad spec.
 */
export function compileCron(spec: string, zone: string): CompiledSchedule {
  const key = `${zone}\u0000${spec}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const next = cronNext(spec, zone);
  // Entries sharing a spec mostly ask for the next instant after nearly the same one (armed one after another, or
  // fired together). An answer holds for every `afterMs` from the one asked up to the answer (no instant lies
  // between them); two are kept, because arming asks alternately after now and after the instant found. So arming
  // or firing a herd of 10k costs two computations rather than 20k.
  const memo = new NextMemo(next);
  const compiled: CompiledSchedule = { spec, zone, nextAfter: (afterMs) => memo.nextAfter(afterMs) };
  cache.set(key, compiled);
  return compiled;
}
