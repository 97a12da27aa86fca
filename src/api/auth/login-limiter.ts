import type { Clock } from '../../shared/clock.js';
import { ApiError } from '../problem.js';

export interface LoginLimits {
  /** Failed logins allowed per (user name, address) in the window. @default 5 */
  perUser: number;
  /** Failed logins allowed per address in the window, whatever the names. @default 20 */
  perAddress: number;
  /** @default 15 min */
  windowMs: number;
}

/**
 * Failed logins per (user, address) and per address, in a sliding window, per instance. Counted whether or not the
 * user exists, so the limit says nothing about which names are real.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly clock: Clock,
    private readonly limits: LoginLimits = { perUser: 5, perAddress: 20, windowMs: 15 * 60_000 },
  ) {}

  /** 429 with the seconds to wait when either limit is reached. */
  check(user: string, address: string): void {
    const now = this.clock.now();
    for (const [key, max] of this.keys(user, address)) {
      const recent = this.recent(key, now);
      if (recent.length >= max) {
        const retryAfter = Math.ceil((recent[0]! + this.limits.windowMs - now) / 1000);
        throw new ApiError(429, `too many failed logins: try again in ${retryAfter} s`, undefined, {
          'retry-after': String(retryAfter),
        });
      }
    }
  }

  failed(user: string, address: string): void {
    const now = this.clock.now();
    for (const [key] of this.keys(user, address)) {
      const times = [...this.recent(key, now), now];
      // Re-inserted, so the map stays ordered by last failure and the oldest go first when it is full.
      this.failures.delete(key);
      this.failures.set(key, times);
    }
    for (const key of this.failures.keys()) {
      if (this.failures.size <= 100_000) break;
      this.failures.delete(key);
    }
  }

  succeeded(user: string, address: string): void {
    this.failures.delete(`u:${user}\n${address}`);
  }

  private keys(user: string, address: string): Array<[string, number]> {
    return [
      [`u:${user}\n${address}`, this.limits.perUser],
      [`a:${address}`, this.limits.perAddress],
    ];
  }

  private recent(key: string, now: number): number[] {
    return (this.failures.get(key) ?? []).filter((t) => now - t < this.limits.windowMs);
  }
}
