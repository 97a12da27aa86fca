import { describe, expect, it } from 'vitest';
import { inWords } from '../../src/api/cluster-status.js';
import { EventRates } from '../../src/api/event-rates.js';
import type { StatusEvent } from '../../src/shared/codecs/task-event.js';
import { FakeClock } from './helpers/fake-clock.js';

const T0 = Date.parse('2026-11-25T10:00:00.000Z');

function event(status: StatusEvent['status'], at: number, due = at): StatusEvent {
  return {
    v: 1,
    taskId: `s@${new Date(due).toISOString()}`,
    scheduleId: 's',
    status,
    at: new Date(at).toISOString(),
    attempt: status === 'SCHEDULED' ? 0 : 1,
    by: { host: 'h', pid: 1, role: status === 'SCHEDULED' ? 'scheduler' : 'consumer' },
  };
}

describe('the dashboard rates (EventRates)', () => {
  it('should count events per second of their own time, with fire lag, over the window only', () => {
    const clock = new FakeClock(T0);
    const rates = new EventRates(clock, 10);
    rates.add(event('SCHEDULED', T0 - 3000 + 40, T0 - 3000)); // 40 ms late
    rates.add(event('SCHEDULED', T0 - 3000 + 160, T0 - 3000)); // 160 ms late
    rates.add(event('FINISHED', T0 - 2500));
    rates.add(event('FAILED', T0 - 1000));
    rates.add(event('EXECUTING', T0 - 1000));
    rates.add(event('FINISHED', T0 - 60_000)); // before the window
    rates.add(event('FINISHED', T0 + 200)); // the second under way
    const s = rates.series();
    expect(s.from).toBe('2026-11-25T09:59:50.000Z');
    expect(s.fired).toEqual([0, 0, 0, 0, 0, 0, 0, 2, 0, 0]);
    expect(s.finished).toEqual([0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);
    expect(s.failed).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    expect(s.fireLagMeanMs[7]).toBe(100);
    expect(s.fireLagMaxMs[7]).toBe(160);

    // A second later the window has moved on by one; the event of the second that was under way now shows.
    clock.advance(1000);
    const later = rates.series();
    expect(later.fired).toEqual([0, 0, 0, 0, 0, 0, 2, 0, 0, 0]);
    expect(later.finished).toEqual([0, 0, 0, 0, 0, 0, 1, 0, 0, 1]);
  });
});

describe('a spec in words (inWords)', () => {
  it('should say a cron expression in words and keep the others as they read', () => {
    expect(inWords('*/5 * * * * *')).toBe('Every 5 seconds');
    expect(inWords('0 9 * * 1-5')).toBe('At 09:00, Monday through Friday');
    expect(inWords('every 5 s')).toBe('every 5 s');
    expect(inWords('once at 2026-11-25T10:00:00.000Z')).toBe('once at 2026-11-25T10:00:00.000Z');
    expect(inWords('not a cron')).toBe('not a cron');
  });
});
