import { describe, expect, it } from 'vitest';
import { ReplyJoiner, replyParts } from '../../src/shared/codecs/scheduler-control.js';
import type { ControlReply, EntryStatus } from '../../src/shared/codecs/scheduler-control.js';

function entry(i: number): EntryStatus {
  return {
    id: `entry-${i}`,
    source: 'file',
    spec: '0 0 9 * * MON',
    timeZone: 'UTC',
    topic: 'tasks',
    processor: 'NoopProcessor',
    state: 'enabled',
    partition: i % 12,
    nextFireTimes: ['2026-11-30T09:00:00.000Z'],
  };
}

function reply(entries: EntryStatus[], pid = 1): ControlReply {
  return {
    v: 1,
    kind: 'reply',
    replyTo: 'c1',
    group: 'g',
    from: { host: 'h', pid },
    ok: true,
    message: 'ready',
    partitions: [0, 1, 2],
    entries,
  };
}

describe('status replies', () => {
  describe('when a reply fits in one record', () => {
    it('should be sent as it is, and pass the joiner unchanged', () => {
      const r = reply([entry(1), entry(2)]);
      expect(replyParts(r)).toEqual([r]);
      expect(new ReplyJoiner().add(r)).toEqual(r);
    });
  });

  describe('when a reply is larger than a record may be', () => {
    it('should go in parts under the limit and be joined back whole, parts of other instances apart', () => {
      const r = reply(Array.from({ length: 500 }, (_, i) => entry(i)));
      const parts = replyParts(r, 8 * 1024);
      expect(parts.length).toBeGreaterThan(5);
      for (const p of parts) expect(Buffer.byteLength(JSON.stringify(p))).toBeLessThanOrEqual(8 * 1024);
      // Of their own kind, so that clients which cannot join them ignore them rather than take a part for the whole.
      expect(parts.every((p, i) => p.kind === 'reply-part' && p.part === i && p.parts === parts.length)).toBe(
        true,
      );

      const other = replyParts(reply([entry(9999), ...r.entries!], 2), 8 * 1024);
      const joiner = new ReplyJoiner();
      const whole: ControlReply[] = [];
      // Parts of one instance arrive in order, interleaved with another instance's.
      for (let i = 0; i < Math.max(parts.length, other.length); i++)
        for (const p of [parts[i], other[i]]) {
          const done = p && joiner.add(p);
          if (done) whole.push(done);
        }
      expect(whole.map((w) => w.from.pid)).toEqual([1, 2]);
      expect(whole[0]).toEqual(r);
      expect(whole[1]!.entries).toHaveLength(501);
    });

    it('should give an entry larger than a part a part of its own', () => {
      const big = { ...entry(1), spec: 'x'.repeat(4000) };
      const parts = replyParts(reply([entry(0), big, entry(2)]), 2048);
      expect(parts.map((p) => p.entries!.map((e) => e.id))).toEqual([['entry-0'], ['entry-1'], ['entry-2']]);
    });
  });

  describe('when parts are broken or no longer waited for', () => {
    it('should ignore parts that do not say which of how many, and forget those of a finished command', () => {
      const joiner = new ReplyJoiner();
      const parts = replyParts(reply(Array.from({ length: 30 }, (_, i) => entry(i))), 4096);
      expect(parts).toHaveLength(2);
      const [first, second] = parts;
      expect(joiner.add({ ...first!, part: 7 })).toBeUndefined();
      expect(joiner.add({ ...first!, part: undefined })).toBeUndefined();
      expect(joiner.add({ ...first!, from: undefined as unknown as ControlReply['from'] })).toBeUndefined();
      expect(joiner.add(first!)).toBeUndefined();
      joiner.forget('c1');
      // Its first part was forgotten: the rest never make a whole reply.
      expect(joiner.add(second!)).toBeUndefined();
    });
  });
});
