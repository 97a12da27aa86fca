import type { Consumer } from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { GroupConsumer } from '../../src/shared/kafka/index.js';
import { silentLogger } from '../../src/shared/logger.js';
import { FakeClock } from './helpers/fake-clock.js';

/** The events of a kafkajs consumer, fired by the test. */
function kafkajsConsumer() {
  const listeners = new Map<string, Array<(e: unknown) => void>>();
  const events = {
    GROUP_JOIN: 'group_join',
    CRASH: 'crash',
    HEARTBEAT: 'heartbeat',
    STOP: 'stop',
    DISCONNECT: 'disconnect',
    END_BATCH_PROCESS: 'end_batch_process',
  };
  const consumer = {
    events,
    on: (event: string, l: (e: unknown) => void) =>
      listeners.set(event, [...(listeners.get(event) ?? []), l]),
    pause: () => undefined,
  } as unknown as Consumer;
  const emit = (event: string, payload: unknown): void => {
    for (const l of listeners.get(event) ?? []) l({ payload });
  };
  return { consumer, events, emit };
}

describe('GroupConsumer', () => {
  describe('when it joins and heartbeats on an injected clock', () => {
    it('should stamp both with that clock, so readiness compares like with like', () => {
      // Years away from the wall clock: a stamp taken from Date.now would show.
      const clock = new FakeClock(Date.parse('2031-01-01T00:00:00Z'));
      const k = kafkajsConsumer();
      const member = new GroupConsumer(k.consumer, silentLogger, 'g', undefined, clock);
      k.emit(k.events.GROUP_JOIN, { memberId: 'm1', memberAssignment: {} });
      expect(member.health()).toEqual({ joined: true, lastHeartbeatAt: clock.now(), joins: 1 });
      clock.advance(3000);
      k.emit(k.events.HEARTBEAT, {});
      expect(member.health().lastHeartbeatAt).toBe(Date.parse('2031-01-01T00:00:03Z'));
    });
  });
});
