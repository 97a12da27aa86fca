import { describe, expect, it } from 'vitest';
import { TakeoverReads } from '../../src/scheduler/takeover-reads.js';

describe('TakeoverReads', () => {
  it('should resolve caught-up once a batch reaches the end offset', async () => {
    const reads = new TakeoverReads();
    reads.assigned(new Set([0, 1]));
    const wait = reads.waitFor(1, 100n);
    reads.batchDone(1, 49n);
    reads.batchDone(1, 99n);
    expect(await wait).toBe('caught-up');
  });

  it('should resolve at once when the partition was already read that far (a re-takeover)', async () => {
    const reads = new TakeoverReads();
    reads.assigned(new Set([3]));
    reads.batchDone(3, 200n);
    expect(await reads.waitFor(3, 150n)).toBe('caught-up');
  });

  it('should abandon a read whose partition a new assignment took away, instead of waiting forever', async () => {
    const reads = new TakeoverReads();
    reads.assigned(new Set([0, 1, 2]));
    const kept = reads.waitFor(0, 10n);
    const taken = reads.waitFor(2, 10n);
    reads.assigned(new Set([0, 1]));
    expect(await taken).toBe('abandoned');
    reads.batchDone(0, 9n);
    expect(await kept).toBe('caught-up');
  });

  it('should abandon a read that starts after its partition was already taken away', async () => {
    const reads = new TakeoverReads();
    reads.assigned(new Set([5]));
    reads.assigned(new Set([6]));
    expect(await reads.waitFor(5, 1n)).toBe('abandoned');
  });
});
