import { createRequire } from 'node:module';

/** What kafkajs 2.2.4's Record (protocol/recordBatch/record/v0) is called with, one per message. */
export interface RecordInput {
  offsetDelta?: number;
  timestampDelta?: number;
  key?: unknown;
  value?: unknown;
  headers?: Record<string, unknown>;
}

/** kafkajs's Encoder, as far as a RecordBatch reads an encoded record: `buf` and `buffer` (writeEncoderArray). */
export interface EncoderLike {
  buf: Buffer;
  offset: number;
  readonly buffer: Buffer;
}
/** kafkajs's Record function; `fast` marks ours. */
export type RecordFn = ((r: RecordInput) => EncoderLike) & { fast?: boolean };

const RECORD = 'kafkajs/src/protocol/recordBatch/record/v0/index.js';
const ENCODER = 'kafkajs/src/protocol/encoder.js';
/** The Produce requests that bind the Record function when loaded: v3 requires it, v4-v7 build on v3. */
const PRODUCE_REQUESTS = [3, 4, 5, 6, 7].map((v) => `kafkajs/src/protocol/requests/produce/v${v}/request.js`);

/** Bytes of a zigzag varint (32-bit, as kafkajs's Encoder.writeVarInt). */
function sizeOfVarInt(value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  let n = 1;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}

/** Bytes of a zigzag varlong of a safe integer (as kafkajs's Encoder.writeVarLong). */
function sizeOfVarLong(value: number): number {
  let v = value >= 0 ? value * 2 : -value * 2 - 1;
  let n = 1;
  while (v >= 0x80) {
    v = Math.floor(v / 128);
    n++;
  }
  return n;
}

function writeVarInt(buf: Buffer, at: number, value: number): number {
  let v = ((value << 1) ^ (value >> 31)) >>> 0;
  while (v >= 0x80) {
    buf[at++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[at++] = v;
  return at;
}

function writeVarLong(buf: Buffer, at: number, value: number): number {
  let v = value >= 0 ? value * 2 : -value * 2 - 1;
  while (v >= 0x80) {
    buf[at++] = (v % 128) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[at++] = v;
  return at;
}

/** Key, value or header value: bytes, text (UTF-8) or null; anything else is left to kafkajs. */
type Bytes = Buffer | string | null;

function isBytes(v: unknown): v is Bytes {
  return v === null || typeof v === 'string' || Buffer.isBuffer(v);
}

function byteLengthOf(v: Buffer | string): number {
  return typeof v === 'string' ? Buffer.byteLength(v, 'utf8') : v.length;
}

/** A varint length and the bytes (length -1 for null), as kafkajs's writeVarIntBytes. */
function writeBytes(buf: Buffer, at: number, v: Bytes, length: number): number {
  if (v === null) return writeVarInt(buf, at, -1);
  at = writeVarInt(buf, at, length);
  if (typeof v === 'string') buf.write(v, at, length, 'utf8');
  else v.copy(buf, at);
  return at + length;
}

/**
 * Encodes one record of a RecordBatch v2 (Kafka's DefaultRecord) into one buffer of its exact size, the bytes
 * kafkajs 2.2.4's Record gives for the same input. kafkajs builds each record in a fresh zero-filled 512-byte
 * Encoder, one more per header, and a `Buffer.from([...])` per varint: in a consumer writing one event per task
 * that was most of the garbage the produce path made. Input kafkajs would treat differently (a timestamp delta
 * that is no safe integer, a value that is neither text, bytes nor null, a header value of another kind) goes to
 * kafkajs's own Record, errors included.
 */
export function fastRecordOf(original: RecordFn): RecordFn {
  const Encoder = createRequire(import.meta.url)(ENCODER) as { prototype: EncoderLike };
  const fast: RecordFn = (input: RecordInput) => {
    const { offsetDelta = 0, timestampDelta = 0, headers = {} } = input;
    const key = input.key === undefined ? null : input.key;
    const value = input.value === undefined ? null : input.value;
    if (
      !Number.isSafeInteger(timestampDelta) ||
      !Number.isInteger(offsetDelta) ||
      offsetDelta < 0 ||
      offsetDelta > 0x3fffffff ||
      !isBytes(key) ||
      !isBytes(value)
    )
      return original(input);
    const keys = Object.keys(headers);
    const hKeys: string[] = [];
    const hValues: Array<Buffer | string> = [];
    for (const k of keys) {
      const h = headers[k];
      const values = Array.isArray(h) ? (h as unknown[]) : [h];
      for (const hv of values) {
        if (!(typeof hv === 'string' || Buffer.isBuffer(hv))) return original(input);
        hKeys.push(k);
        hValues.push(hv);
      }
    }
    const keyLength = key === null ? -1 : byteLengthOf(key);
    const valueLength = value === null ? -1 : byteLengthOf(value);
    let body =
      1 +
      sizeOfVarLong(timestampDelta) +
      sizeOfVarInt(offsetDelta) +
      (key === null ? 1 : sizeOfVarInt(keyLength) + keyLength) +
      (value === null ? 1 : sizeOfVarInt(valueLength) + valueLength) +
      sizeOfVarInt(hKeys.length);
    const hKeyLengths = new Array<number>(hKeys.length);
    const hValueLengths = new Array<number>(hKeys.length);
    for (let i = 0; i < hKeys.length; i++) {
      const kl = Buffer.byteLength(hKeys[i] as string, 'utf8');
      const vl = byteLengthOf(hValues[i] as Buffer | string);
      hKeyLengths[i] = kl;
      hValueLengths[i] = vl;
      body += sizeOfVarInt(kl) + kl + sizeOfVarInt(vl) + vl;
    }
    // Pooled (allocUnsafe), every byte written below.
    const buf = Buffer.allocUnsafe(sizeOfVarInt(body) + body);
    let at = writeVarInt(buf, 0, body);
    buf[at++] = 0;
    at = writeVarLong(buf, at, timestampDelta);
    at = writeVarInt(buf, at, offsetDelta);
    at = writeBytes(buf, at, key, keyLength);
    at = writeBytes(buf, at, value, valueLength);
    at = writeVarInt(buf, at, hKeys.length);
    for (let i = 0; i < hKeys.length; i++) {
      at = writeBytes(buf, at, hKeys[i] as string, hKeyLengths[i] as number);
      at = writeBytes(buf, at, hValues[i] as Buffer | string, hValueLengths[i] as number);
    }
    // An Encoder holding exactly the record, made without the 512-byte buffer its constructor allocates.
    const encoder = Object.create(Encoder.prototype) as EncoderLike;
    encoder.buf = buf;
    encoder.offset = buf.length;
    return encoder;
  };
  fast.fast = true;
  return fast;
}

/**
 * Makes kafkajs's Produce requests (v3-v7, those a RecordBatch v2 goes in) encode their records with
 * {@link fastRecordOf}. The Record function is bound when the v3 request module loads, so it is replaced in
 * Node's module cache and the Produce request modules are loaded again. Applied once; false when kafkajs's Record
 * is not the code this was written against.
 */
export function useFastRecordEncoder(): boolean {
  const require = createRequire(import.meta.url);
  const recordPath = require.resolve(RECORD);
  const original = require(RECORD) as RecordFn;
  if (original.fast) return true;
  const src = original.toString();
  if (
    !/\.writeVarLong\(timestampDelta\)/.test(src) ||
    !/\.writeVarIntArray\(headersArray\.map\(Header\)\)/.test(src)
  )
    return false;
  const cached = require.cache[recordPath];
  if (!cached) return false;
  cached.exports = fastRecordOf(original);
  for (const path of PRODUCE_REQUESTS) delete require.cache[require.resolve(path)];
  return true;
}
