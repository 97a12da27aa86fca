import { createRequire } from 'node:module';

/** kafkajs's own interval for re-checking queued requests (src/network/requestQueue/index.js). */
const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/**
 * kafkajs 2.2.4 re-arms a 1 ms timer on every connection forever, even with nothing queued (kafkajs issues
 * #1556 and #1704, unreleased fix #1667): an idle scheduler or consumer burnt 2-4 % of a core doing nothing.
 * A check is needed only while requests wait (a push or a response checks again anyway), after a throttle ends
 * or every 10 ms. Applied once, only to the version whose code it matches.
 */
export function fixIdleRequestQueueLoop(): boolean {
  const require = createRequire(import.meta.url);
  const RequestQueue = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueue };
  const proto = RequestQueue.prototype;
  const original = proto.scheduleCheckPendingRequests;
  if ((original as { fixed?: boolean }).fixed) return true;
  // Only the known shape of the bug: a later kafkajs that changed this code is left alone.
  if (!/let scheduleAt = this\.throttledUntil - Date\.now\(\)/.test(original.toString())) return false;
  const fixed = function scheduleCheckPendingRequests(this: RequestQueue): void {
    if (this.throttleCheckTimeoutId || this.pending.length === 0) return;
    const untilUnthrottled = this.throttledUntil - Date.now();
    this.throttleCheckTimeoutId = setTimeout(
      () => {
        this.throttleCheckTimeoutId = null;
        this.checkPendingRequests();
      },
      untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS,
    );
  };
  Object.assign(fixed, { fixed: true });
  proto.scheduleCheckPendingRequests = fixed;
  return true;
}
