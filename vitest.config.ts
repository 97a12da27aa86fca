import { defineConfig } from 'vitest/config';

/** Tiers that run against a real broker: the global setup starts one (fresh in CI) and stops it. */
const brokerTier = (name: string, include: string[], timeoutMs: number) => ({
  test: {
    name,
    include,
    environment: 'node',
    globalSetup: ['test/integration/helpers/global-setup.ts'],
    testTimeout: timeoutMs,
    hookTimeout: 120_000,
    pool: 'forks' as const,
  },
});

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
        },
      },
      // The real programs on a real broker, one file at a time (--no-file-parallelism), each test in seconds.
      brokerTier('integration', ['test/integration/**/*.test.ts'], 120_000),
      // Long cases: broker restarts, volume, minutes-long windows. Their own tier, so their time shows apart.
      brokerTier('soak', ['test/soak/**/*.test.ts'], 300_000),
      // A three-broker cluster killed and restarted under load (test/cluster): each case takes 2.5-3 min here, and
      // up to 6 with the machine busy with other work.
      brokerTier('cluster', ['test/cluster/**/*.test.ts'], 600_000),
    ],
  },
});
