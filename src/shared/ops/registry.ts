import { collectDefaultMetrics, Registry } from 'prom-client';

/** Lag and duration buckets, seconds: 1 ms to 1 min. */
export const SECONDS_BUCKETS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
];

/** A registry with Node's process metrics (`process_*`, `nodejs_*`), as every taskmanager process exposes. */
export function processRegistry(component: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry });
  return registry;
}
