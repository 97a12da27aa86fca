import { describe, expect, it } from 'vitest';
import { KAFKA_SILENT_MS, membershipProblem } from '../../src/shared/kafka/membership.js';

const NOW = 1_000_000;

describe('the readiness rule of a group member', () => {
  describe('when the member is not in its group', () => {
    it('should say it is joining, naming the group', () => {
      expect(membershipProblem({ joined: false, lastHeartbeatAt: NOW }, NOW, 'consumer group g')).toBe(
        'not in consumer group g (joining)',
      );
    });
  });

  describe('when the coordinator stays silent', () => {
    it('should be ready up to the limit and say for how long it was silent after it', () => {
      const at = NOW - KAFKA_SILENT_MS;
      expect(membershipProblem({ joined: true, lastHeartbeatAt: at }, NOW, 'g')).toBeUndefined();
      expect(membershipProblem({ joined: true, lastHeartbeatAt: at - 2000 }, NOW, 'g')).toBe(
        'no answer from the group coordinator for 7 s (broker unreachable?)',
      );
    });

    it('should not count a member that never heard from it as ready', () => {
      expect(membershipProblem({ joined: true, lastHeartbeatAt: undefined }, NOW, 'g')).toMatch(/no answer/);
    });
  });
});
