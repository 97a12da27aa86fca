/**
 * Debian packages a test or benchmark needs, installed with apt on first use (docs/development.md#what-each-suite-installs).
 */
import { spawnSync } from 'node:child_process';

/** One apt at a time: tests and benchmarks may install at once (the same lock as scripts/docker-test-engine.sh). */
const APT =
  'flock /tmp/taskmanager-apt.lock env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600';

/**
 * `apt-get update` then `apt-get install --no-install-recommends <packages>` (up to 10 minutes): undefined when apt
 * succeeded, else why not, in one line.
 */
export function aptInstall(packages: string[]): string | undefined {
  const list = packages.join(' ');
  const r = spawnSync(
    'bash',
    ['-c', `${APT} update -qq && ${APT} install -y -qq --no-install-recommends ${list}`],
    {
      encoding: 'utf8',
      timeout: 600_000,
    },
  );
  if (r.status === 0) return undefined;
  return `apt-get install ${list} failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').at(-1) ?? ''}`;
}
