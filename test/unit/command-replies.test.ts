import { describe, expect, it } from 'vitest';
import { ReplyJoiner, replyParts } from '../../src/scheduler/commands.js';
import type { CommandReply } from '../../src/scheduler/commands.js';
import type { EntryStatus } from '../../src/scheduler/group-scheduler.js';

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

function reply(entries: EntryStatus[], pid = 1): CommandReply {
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
      expect(parts.every((p, i) => p.part === i && p.parts === parts.length)).toBe(true);

      const other = replyParts(reply([entry(9999), ...r.entries!], 2), 8 * 1024);
      const joiner = new ReplyJoiner();
      const whole: CommandReply[] = [];
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
  });
});
