import { describe, expect, it } from 'vitest';
import { ContiguousOffsets } from '../../src/consumer/contiguous-offsets.js';
import { dlqRecord } from '../../src/shared/codecs/dlq-record.js';
import { decodeTaskMessage, taskIdFor } from '../../src/shared/codecs/task-message.js';

describe('contiguous offsets', () => {
  describe('when records finish out of order', () => {
    it('should only move to the end of the contiguous finished run', () => {
      const c = new ContiguousOffsets(['10', '11', '12', '13']);
      expect(c.finish('12')).toBeUndefined();
      expect(c.finish('11')).toBeUndefined();
      expect(c.finish('10')).toBe('12');
      expect(c.allDone).toBe(false);
      expect(c.finish('13')).toBe('13');
      expect(c.allDone).toBe(true);
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
