import { describe, expect, it } from 'vitest';
import { Watermark } from '../../src/consumer/watermark.js';
import { dlqRecord } from '../../src/shared/codecs/dlq-record.js';
import { decodeTaskMessage, taskIdFor } from '../../src/shared/codecs/task-message.js';

describe('watermark', () => {
  describe('when records finish out of order', () => {
    it('should only move to after the contiguous finished run', () => {
      const w = new Watermark();
      for (const o of ['10', '11', '12', '13']) w.take(o);
      expect(w.position).toBe('10');
      expect(w.finish('12')).toBeUndefined();
      expect(w.finish('11')).toBeUndefined();
      expect(w.finish('10')).toBe('13');
      expect(w.pending).toBe(1);
      expect(w.finish('13')).toBe('14');
      expect(w.pending).toBe(0);
    });
  });

  describe('when records come in several fetches, each ending with transaction markers', () => {
    it('should move past the markers of a fetch once its records and all before finished', () => {
      const w = new Watermark();
      w.take('0');
      expect(w.end('1')).toBeUndefined(); // record 0 runs; 1 is a commit marker
      w.take('2');
      expect(w.end('3')).toBeUndefined();
      expect(w.finish('2')).toBeUndefined(); // 0 still runs
      expect(w.finish('0')).toBe('4');
      expect(w.has('3')).toBe(true);
      expect(w.has('4')).toBe(false);
      // A fetch of markers only, nothing pending: straight past it.
      expect(w.end('5')).toBe('6');
      expect(w.end('5')).toBeUndefined();
    });

    it('should refuse a record taken twice or out of order', () => {
      const w = new Watermark();
      w.take('5');
      expect(() => w.take('5')).toThrow(/out of order/);
      expect(() => w.finish('6')).toThrow(/not taken/);
    });
  });
});

describe('task message codec', () => {
  describe('when the bytes are not a task', () => {
    it.each([
      [Buffer.from([0xff, 0xfe, 0x00]), /not UTF-8 JSON/],
      [Buffer.from('{"v":1}'), /not a task message v1: .*taskId/],
      [Buffer.from('[1,2]'), /not a task message v1/],
      [null, /empty record value/],
    ])('should say why (%#)', (value, why) => {
      expect(() => decodeTaskMessage(value)).toThrow(why);
    });
  });

  describe('when making a taskId', () => {
    it('should be the schedule Id and the instant in UTC with milliseconds', () => {
      expect(taskIdFor('1', Date.parse('2026-11-22T10:00:05Z'))).toBe('1@2026-11-22T10:00:05.000Z');
    });
  });
});

describe('DLQ record', () => {
  describe('when a record is dead-lettered', () => {
    it('should keep the original bytes and headers and add the dlq headers', () => {
      const value = Buffer.from([1, 2, 3]);
      const r = dlqRecord(
        {
          topic: 'tt',
          partition: 3,
          offset: '42',
          key: Buffer.from('k'),
          value,
          headers: { 'task-id': 'x' },
          timestamp: '0',
        },
        'decode-error',
        'bad',
        0,
        Date.parse('2026-11-22T10:00:05Z'),
      );
      expect(r).toEqual({
        topic: 'tt.dlq',
        key: 'k',
        value,
        headers: {
          'task-id': 'x',
          'dlq-reason': 'decode-error',
          'dlq-error': 'bad',
          'dlq-attempts': '0',
          'dlq-original-topic': 'tt',
          'dlq-original-partition': '3',
          'dlq-original-offset': '42',
          'dlq-failed-at': '2026-11-22T10:00:05.000Z',
        },
      });
    });
  });
});
