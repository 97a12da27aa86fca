import { Counter, Gauge, Histogram } from 'prom-client';
import type { Registry } from 'prom-client';
import { SECONDS_BUCKETS } from '../shared/ops/registry.js';

/** taskapi's metrics: requests by route pattern (never by raw URL, so ids cannot create series) and the view. */
export function apiMetrics(
  registry: Registry,
  view: { tasks(): number; ready(): boolean },
): (route: string, method: string, status: number, seconds: number) => void {
  const requests = new Counter({
    name: 'taskmanager_api_requests_total',
    help: 'HTTP requests answered, by route pattern, method and status code',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'taskmanager_api_request_duration_seconds',
    help: 'Time to answer a request (writes include the Kafka ack and the read-back)',
    labelNames: ['route', 'method'],
    buckets: SECONDS_BUCKETS,
    registers: [registry],
  });
  new Gauge({
    name: 'taskmanager_api_tasks',
    help: 'Tasks in this instance’s view of taskmanager.tasks',
    registers: [registry],
    collect() {
      this.set(view.tasks());
    },
  });
  new Gauge({
    name: 'taskmanager_api_ready',
    help: '1 when the view is built and Kafka answers',
    registers: [registry],
    collect() {
      this.set(view.ready() ? 1 : 0);
    },
  });
  return (route, method, status, seconds) => {
    requests.inc({ route, method, status: String(status) });
    duration.observe({ route, method }, seconds);
  };
}
