import type { IHeaders, KafkaMessage } from 'kafkajs';
import type { InRecord, RecordHeaders } from './types.js';

function fromKafkaHeaders(h: IHeaders | undefined): RecordHeaders {
  const out: RecordHeaders = {};
  if (!h) return out;
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const one = Array.isArray(v) ? v[v.length - 1] : v;
    out[k] = Buffer.isBuffer(one) ? one.toString('utf8') : String(one);
  }
  return out;
}

export function toInRecord(topic: string, partition: number, m: KafkaMessage): InRecord {
  return {
    topic,
    partition,
    offset: m.offset,
    key: m.key ?? null,
    value: m.value ?? null,
    headers: fromKafkaHeaders(m.headers),
    timestamp: m.timestamp,
  };
}
