/** The API benchmark's figures: what each phase measured, its tables, and the targets. */
import type { LoadResult } from './api-http.js';
import { cell, printTable, summarize } from './report.js';

export const TARGETS = { createP99Ms: 30, listP99Ms: 20, rebuildMs: 5000 } as const;

/** A row of sequential request latencies (ms). */
export interface LatencyRow {
  label: string;
  ms: number[];
  /** A baseline row: no target applies. */
  baseline?: boolean;
}

export interface RebuildRun {
  /** The raw kafkajs consumer, client created to last record parsed. */
  rawMs: number;
  /** taskapi spawn to the first /api/readyz 200. */
  readyMs: number;
  /** The figure taskapi's "view rebuilt" line gives, and its task count. */
  loggedMs: number;
  loggedTasks: number;
}

export interface LoadRow {
  label: string;
  r: LoadResult;
  /** The server process's CPU over the run, % of one core. */
  serverCpu: number;
  /** This process's (autocannon's) CPU over the run, % of one core. */
  clientCpu: number;
}

export interface ApiFigures {
  seeded: number;
  /** Size of the definition each create writes (the baseline sends the same), bytes. */
  create: { valueBytes: number; rows: LatencyRow[] };
  list: { total: number; walk: { pages: number; ms: number[] }; rows: LatencyRow[] };
  rebuild: RebuildRun[];
  load: LoadRow[];
}

const f1 = (x: number): string => cell(x, 1);

function latencyTable(rows: LatencyRow[], targetP99: number): void {
  printTable(
    ['who / request', 'n', 'p50', 'p99', 'max', 'target p99', 'met'],
    rows.map((r) => {
      const s = summarize(r.ms);
      return [
        r.label,
        String(r.ms.length),
        f1(s.p50),
        f1(s.p99),
        f1(s.max),
        r.baseline ? '-' : `≤ ${targetP99}`,
        r.baseline ? '-' : s.p99 <= targetP99 ? 'yes' : 'no',
      ];
    }),
  );
}

const median = (xs: number[]): number => summarize(xs).p50;

export function printFigures(x: ApiFigures, connections: number, durationS: number): void {
  console.log(
    `\n1. create a task, sequential (records of ${x.create.valueBytes} bytes; taskapi: 201 = acked by Kafka ` +
      'and read back through its view)\n',
  );
  latencyTable(x.create.rows, TARGETS.createP99Ms);

  console.log(`\n2. list 100 of ${x.list.total} tasks, sequential\n`);
  latencyTable(x.list.rows, TARGETS.listP99Ms);
  const walk = summarize(x.list.walk.ms);
  const walkS = x.list.walk.ms.reduce((a, b) => a + b, 0) / 1000;
  console.log(
    `walk of every page in order: ${x.list.walk.pages} pages in ${walkS.toFixed(1)} s ` +
      `(p50 ${f1(walk.p50)}, p99 ${f1(walk.p99)}, max ${f1(walk.max)} ms)`,
  );

  console.log(`\n3. view rebuild of ${x.seeded} seeded tasks\n`);
  const rebuildRow = (label: string, xs: number[], target: boolean): string[] => [
    label,
    String(xs.length),
    cell(Math.min(...xs)),
    cell(median(xs)),
    cell(Math.max(...xs)),
    target ? `≤ ${TARGETS.rebuildMs}` : '-',
    target ? (Math.max(...xs) <= TARGETS.rebuildMs ? 'yes' : 'no') : '-',
  ];
  printTable(
    ['who', 'runs', 'min', 'median', 'max', 'target', 'met'],
    [
      rebuildRow(
        'raw kafkajs consumer, topic to its end (baseline)',
        x.rebuild.map((r) => r.rawMs),
        false,
      ),
      rebuildRow(
        'taskapi: spawn → /api/readyz 200',
        x.rebuild.map((r) => r.readyMs),
        true,
      ),
      rebuildRow(
        'taskapi: its "view rebuilt … in X ms" line',
        x.rebuild.map((r) => r.loggedMs),
        false,
      ),
    ],
  );

  console.log(
    `\n4. get by id, autocannon ${connections} connections × ${durationS} s, random existing ids\n`,
  );
  const floor = x.load[0]?.r.okPerS ?? NaN;
  printTable(
    [
      'server',
      'req/s',
      'p50 ms',
      'p99 ms',
      'max ms',
      'non-2xx',
      'errors',
      'server CPU %',
      'client CPU %',
      'vs bare',
    ],
    x.load.map((l) => [
      l.label,
      cell(l.r.okPerS),
      cell(l.r.p50),
      cell(l.r.p99),
      cell(l.r.max),
      String(l.r.non2xx),
      String(l.r.errors),
      cell(l.serverCpu),
      cell(l.clientCpu),
      `${cell((l.r.okPerS / floor) * 100)} %`,
    ]),
  );
}

/** One line per target: what was measured and whether it was met. */
export function targetLines(x: ApiFigures): Array<{ target: string; measured: string; met: boolean }> {
  const create = summarize(x.create.rows.find((r) => !r.baseline)?.ms ?? []);
  const lists = x.list.rows.filter((r) => !r.baseline).map((r) => summarize(r.ms).p99);
  const ready = Math.max(...x.rebuild.map((r) => r.readyMs));
  return [
    {
      target: `create p99 ≤ ${TARGETS.createP99Ms} ms`,
      measured: `${f1(create.p99)} ms`,
      met: create.p99 <= TARGETS.createP99Ms,
    },
    {
      target: `list 100 p99 ≤ ${TARGETS.listP99Ms} ms`,
      measured: `${f1(Math.max(...lists))} ms (worst row)`,
      met: lists.every((p) => p <= TARGETS.listP99Ms),
    },
    {
      target: `rebuild ≤ ${TARGETS.rebuildMs / 1000} s`,
      measured: `${(ready / 1000).toFixed(2)} s (slowest spawn → ready)`,
      met: ready <= TARGETS.rebuildMs,
    },
  ];
}
