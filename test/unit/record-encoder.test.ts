import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { fastRecordOf, useFastRecordEncoder } from '../../src/shared/kafka/kafkajs/record-encoder.js';
import type { RecordFn, RecordInput } from '../../src/shared/kafka/kafkajs/record-encoder.js';
import { seededRandom } from '../kit/random.js';

const require = createRequire(import.meta.url);
const RECORD = 'kafkajs/src/protocol/recordBatch/record/v0/index.js';
const Decoder = require('kafkajs/src/protocol/decoder.js') as new (b: Buffer) => {
  readVarIntBytes(): Buffer;
};
const decodeRecord = require('kafkajs/src/protocol/recordBatch/record/v0/decoder.js') as (
  d: unknown,
  context: object,
) => { key: Buffer | null; value: Buffer | null; headers: Record<string, Buffer | Buffer[]>; offset: string };

/** kafkajs's own Record, whether or not the fast one is installed (the test may run after the adapter loaded). */
function kafkajsRecord(): RecordFn {
  const path = require.resolve(RECORD);
  const current = require(RECORD) as RecordFn;
  if (!current.fast) return current;
  delete require.cache[path];
  const fresh = require(RECORD) as RecordFn;
  (require.cache[path] as { exports: unknown }).exports = current;
  return fresh;
}

const original = kafkajsRecord();
const fast = fastRecordOf(original);

function textOf(rand: () => number, max: number): string {
  const alphabet = ['a', 'Z', '9', '/', '@', 'é', '€', '𝄞', '"', ' '];
  let s = '';
  const n = Math.floor(rand() * max);
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rand() * alphabet.length)];
  return s;
}

function bytesOf(rand: () => number, max: number): unknown {
  const r = rand();
  if (r < 0.15) return null;
  if (r < 0.2) return undefined;
  if (r < 0.6) return textOf(rand, max);
  return Buffer.from(textOf(rand, max));
}

describe('the record encoder of the produce path (kafkajs adapter)', () => {
  it('should give byte for byte what kafkajs 2.2.4 gives, for any key, value, headers and deltas', () => {
    const rand = seededRandom(20261207);
    for (let i = 0; i < 3000; i++) {
      const headers: Record<string, unknown> = {};
      const nh = Math.floor(rand() * 4);
      for (let h = 0; h < nh; h++) {
        const v = rand() < 0.2 ? [textOf(rand, 10), Buffer.from(textOf(rand, 10))] : textOf(rand, 300);
        headers[textOf(rand, 12) || `h${h}`] = v;
      }
      const big = rand() < 0.1;
      const input: RecordInput = {
        offsetDelta: Math.floor(rand() * (big ? 2 ** 30 : 5000)),
        timestampDelta: Math.floor((rand() - 0.3) * (big ? 2 ** 52 : 100_000)),
        key: bytesOf(rand, 40),
        value: bytesOf(rand, big ? 40_000 : 600),
        headers,
      };
      expect(fast(input).buffer.equals(original(input).buffer), JSON.stringify(input).slice(0, 300)).toBe(
        true,
      );
    }
  });

  it('should read back through kafkajs’s own record decoder', () => {
    const enc = fast({
      offsetDelta: 7,
      timestampDelta: 3,
      key: 'e1@2026-12-07T20:00:00.000Z',
      value: '{"v":1,"status":"FINISHED"}',
      headers: { 'task-id': 'e1@2026-12-07T20:00:00.000Z', multi: ['a', Buffer.from('b')] },
    });
    // As a RecordBatch reads it: its length first, then the record.
    const body = new Decoder(enc.buffer).readVarIntBytes();
    const rec = decodeRecord(new Decoder(body), { firstOffset: '100', firstTimestamp: '1000', magicByte: 2 });
    expect(rec.offset).toBe('107');
    expect(String(rec.key)).toBe('e1@2026-12-07T20:00:00.000Z');
    expect(String(rec.value)).toBe('{"v":1,"status":"FINISHED"}');
    expect(String(rec.headers['task-id'])).toBe('e1@2026-12-07T20:00:00.000Z');
    expect((rec.headers['multi'] as Buffer[]).map(String)).toEqual(['a', 'b']);
  });

  it('should leave to kafkajs what it does not take: its errors stay kafkajs’s', () => {
    for (const input of [
      { key: 'k', value: 'v', headers: { h: null } },
      { key: 'k', value: 'v', headers: { h: 42 } },
      { key: 42, value: 'v' },
    ] as RecordInput[]) {
      let want: unknown;
      try {
        want = original(input).buffer;
      } catch (err) {
        want = err;
      }
      if (want instanceof Error) expect(() => fast(input)).toThrow(want.message);
      else expect(fast(input).buffer).toEqual(want);
    }
    const fractional = { key: 'k', value: 'v', timestampDelta: 1.5 } as RecordInput;
    expect(() => original(fractional)).toThrow(RangeError);
    expect(() => fast(fractional)).toThrow(RangeError);
  });

  it('should be what the Produce requests encode with, even those loaded before the adapter', async () => {
    const path = require.resolve(RECORD);
    const cached = require.cache[path] as { exports: unknown };
    const requests = [3, 4, 5, 6, 7].map((v) =>
      require.resolve(`kafkajs/src/protocol/requests/produce/v${v}/request.js`),
    );
    type Request = (o: object) => { encode(): Promise<{ buffer: Buffer }> };
    const v7 = (): Request => require('kafkajs/src/protocol/requests/produce/v7/request.js') as Request;
    // As on a first load: kafkajs's Record in the module cache, and the Produce requests bound to it.
    cached.exports = original;
    for (const r of requests) delete require.cache[r];
    v7();
    expect(useFastRecordEncoder()).toBe(true);
    const installed = require(RECORD) as RecordFn;
    expect(installed.fast).toBe(true);
    // Counts the records the requests encode from here on (a request module still bound to the old Record would not).
    let calls = 0;
    cached.exports = Object.assign((r: RecordInput) => (calls++, installed(r)), { fast: true });
    const messages = [{ key: 'k', value: 'v', headers: { 'task-id': 't' }, timestamp: '1000' }];
    const encoded = await v7()({
      acks: -1,
      timeout: 1000,
      topicData: [{ topic: 't', partitions: [{ partition: 0, firstSequence: 0, messages }] }],
    }).encode();
    cached.exports = installed;
    expect(calls).toBe(1);
    const record = original({
      offsetDelta: 0,
      timestampDelta: 0,
      key: 'k',
      value: 'v',
      headers: { 'task-id': 't' },
    });
    expect(encoded.buffer.includes(record.buffer)).toBe(true);
  });
});
