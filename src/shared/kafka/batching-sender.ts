import type { OutRecord } from './types.js';
import type { KafkaProducer, Placed } from './client.js';

interface Pending {
  records: readonly OutRecord[];
  /** Whether the caller wants to know where its records were written. */
  placed: boolean;
  resolve(placed: Placed[]): void;
  reject(err: unknown): void;
}

/** A request's size stays well under a broker's default `message.max.bytes` (1 MiB per partition's batch). */
const MAX_REQUEST_BYTES = 512 * 1024;

/**
 * Coalesces concurrent sends into one produce request: everything queued while a request is in flight goes out
 * together in the next one (no wait when nothing is in flight, as the Java client with `linger.ms=0`). Each caller's
 * promise resolves when its own records are acknowledged; when one record of a request fails, every caller of that
 * request is told (at-least-once: a caller that retries may write a record that was written).
 */
export class BatchingSender {
  private queue: Pending[] = [];
  private inFlight = false;

  constructor(
    private readonly producer: KafkaProducer,
    private readonly maxRecords = 10_000,
  ) {}

  send(records: readonly OutRecord[]): Promise<void> {
    return this.enqueue(records, false).then(() => undefined);
  }

  /** Sends as {@link send} and resolves to where each record was written, in order. */
  place(records: readonly OutRecord[]): Promise<Placed[]> {
    return this.enqueue(records, true);
  }

  private enqueue(records: readonly OutRecord[], placed: boolean): Promise<Placed[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ records, placed, resolve, reject });
      if (!this.inFlight) void this.flush();
    });
  }

  private async flush(): Promise<void> {
    this.inFlight = true;
    // Let the callers of this tick join the request.
    await new Promise<void>((r) => setImmediate(r));
    while (this.queue.length > 0) {
      // One slice rather than a shift per caller: shift() is O(queue) and the queue holds thousands of callers
      // under load (it was 18 % of a consumer's CPU).
      let n = 0;
      let count = 0;
      let bytes = 0;
      for (const p of this.queue) {
        let size = 0;
        for (const r of p.records) size += recordBytes(r);
        if (n > 0 && (count + p.records.length > this.maxRecords || bytes + size > MAX_REQUEST_BYTES)) break;
        n++;
        count += p.records.length;
        bytes += size;
      }
      const take = this.queue.slice(0, n);
      this.queue = this.queue.slice(n);
      const records = take.flatMap((p) => p.records);
      try {
        if (take.some((p) => p.placed)) {
          const placed = await this.producer.sendPlaced(records);
          let at = 0;
          for (const p of take) {
            p.resolve(placed.slice(at, at + p.records.length));
            at += p.records.length;
          }
        } else {
          await this.producer.send(records);
          for (const p of take) p.resolve(NOT_PLACED);
        }
      } catch (err) {
        for (const p of take) p.reject(err);
      }
    }
    this.inFlight = false;
  }
}

/** About what a record weighs in a produce request (counted without an array per record: it runs for each one). */
function recordBytes(r: OutRecord): number {
  let n = 70 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  const h = r.headers;
  if (h) for (const k in h) n += k.length + (h[k]?.length ?? 0);
  return n;
}

/** What a plain send's callers are resolved with: one array for all. */
const NOT_PLACED: Placed[] = [];
