import { describe, expect, it } from 'vitest';
import { startWithRetry } from '../../src/api/serve.js';
import { AppError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';

describe('taskapi start-up', () => {
  describe('when a topic it reads does not exist', () => {
    it('should give up at once with a usage error (exit 2) naming the topic', async () => {
      let attempts = 0;
      const started = startWithRetry(silentLogger, async () => {
        attempts++;
        throw new AppError('TOPIC_MISSING', 'topic taskmanager.users does not exist: create it');
      });
      await expect(started).rejects.toMatchObject({
        code: 'USAGE',
        message: 'topic taskmanager.users does not exist: create it',
      });
      expect(attempts).toBe(1);
    });
  });

  describe('when Kafka does not answer yet', () => {
    it('should try again after the first wait and go on once it answers', async () => {
      const warnings: string[] = [];
      let attempts = 0;
      await startWithRetry({ ...silentLogger, warn: (m) => void warnings.push(m) }, async () => {
        if (++attempts === 1) throw new Error('connect ECONNREFUSED 127.0.0.1:9092');
      });
      expect(attempts).toBe(2);
      expect(warnings).toEqual([
        'cannot start yet (connect ECONNREFUSED 127.0.0.1:9092); retrying in 500 ms',
      ]);
    });
  });
});
