/**
 * Store benchmark: what taskapi's view of taskmanager.tasks costs with N definitions of 200-byte payloads written
 * straight into the topic (a plain producer, as bench:api seeds them), on a broker of its own:
 *
 *   1. RSS of the ready taskapi, and after a walk through every page of GET /api/v1/tasks (limit 100);
 *   2. restart to ready (spawn to the first /api/readyz 200): from its store's checkpoint, and cold (store deleted),
 *      with the records its start-up line says it read.
 *
 *   npm run bench:store -- [--n 100000] [--restarts 3] [--cli DIR]...
 *   --cli: another build of taskapi (a checkout of an older commit with `npm run build`), measured the same way on
 *   the same topic, for a before/after table. env: KAFKA_LOCAL_PORT and KAFKA_LOCAL_CONTROLLER_PORT (the broker's
 *   ports, else free ones). Not a test: it prints figures.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeJson } from '../src/shared/messages.js';
import { TASKS_TOPIC } from '../src/shared/tasks/definition.js';
import { useBearer, whenReady } from './lib/api-http.js';
import { seedDefinition, seedId } from './lib/api-kafka.js';
import { firstAdminToken } from './lib/first-admin.js';
import { produceAll, rawKafka } from './lib/kafka-bench.js';
import { printTable } from './lib/report.js';
import { OwnBroker } from '../test/kit/own-broker.js';
import { exitWithin, freePort, ROOT, startNode } from '../test/kit/processes.js';
import type { Cli } from '../test/kit/processes.js';

const ADMIN = {
  username: 'bench-admin',
  initialPassword: 'bench-admin-initial',
  password: 'bench-admin-password',
};
const READ =
  /(\d+) task\(s\).* in (\d+) ms(?:; (\d+) record\(s\) of taskmanager\.tasks read, (.*?))?(?: \w+=\S+)*$/m;

interface Started {
  cli: Cli;
  base: string;
  readyMs: number;
  /** From its start-up line: tasks, ms, records read (ours only), how. */
  line: string;
}

async function startTaskapi(
  build: string,
  brokers: string[],
  dataDir: string,
  log: string,
): Promise<Started> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const cli = startNode(
    'taskapi',
    join(build, 'dist/src/api/cli.js'),
    [
      ...['--brokers', brokers.join(','), '--port', String(port), '--data-dir', dataDir],
      ...['--history', '1m'],
    ],
    {
      logFile: log,
      env: { TASKAPI_ADMIN_USER: ADMIN.username, TASKAPI_ADMIN_PASSWORD: ADMIN.initialPassword },
    },
  );
  const readyAt = await whenReady(base, 600_000, () => cli.alive);
  useBearer(await firstAdminToken(base, ADMIN));
  const m = READ.exec(readFileSync(log, 'utf8'));
  const line = m ? `${m[1]} tasks in ${m[2]} ms${m[3] ? `; ${m[3]} records read, ${m[4]}` : ''}` : '?';
  return { cli, base, readyMs: readyAt - t0, line };
}

async function stop(s: Started): Promise<void> {
  s.cli.signal('SIGTERM');
  await exitWithin(s.cli, 30_000);
}

/** RSS, MB: all of it, and its anonymous part (the heap and other private memory) and its file part (the store's mapped pages, which the kernel drops when it needs the memory). */
function rss(s: Started): string {
  const status = readFileSync(`/proc/${s.cli.child.pid}/status`, 'utf8');
  const mb = (field: string) =>
    (Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) / 1024).toFixed(0);
  return `${mb('VmRSS')} (${mb('RssAnon')} + ${mb('RssFile')})`;
}

/** Walks every page (what a dashboard scrolling through everything makes it read). */
async function walk(s: Started, token: string): Promise<number> {
  let cursor: string | undefined;
  let n = 0;
  do {
    const res = await fetch(
      `${s.base}/api/v1/tasks?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      {
        headers: { authorization: `Bearer ${token}` },
      },
    );
    const page = (await res.json()) as { items: unknown[]; nextCursor?: string };
    n += page.items.length;
    cursor = page.nextCursor;
  } while (cursor);
  return n;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '100000' },
      restarts: { type: 'string', default: '3' },
      cli: { type: 'string', multiple: true },
    },
  });
  const n = Number(values.n);
  const builds = [ROOT, ...(values.cli ?? [])];
  const logDir = mkdtempSync(join(tmpdir(), 'bench-store-'));
  const ports = process.env.KAFKA_LOCAL_PORT
    ? {
        port: Number(process.env.KAFKA_LOCAL_PORT),
        controller: Number(process.env.KAFKA_LOCAL_CONTROLLER_PORT),
      }
    : undefined;
  const broker = await OwnBroker.create(logDir, ports);
  try {
    await broker.start();
    await broker.createSharedTopics();
    const kafka = rawKafka(broker.brokers, 'bench-store');
    const baseMs = Date.now() - n - 60_000;
    const payload = { data: 'p'.repeat(190) };
    const seeded = await produceAll(kafka, TASKS_TOPIC, n, (i) => ({
      key: seedId(i),
      value: encodeJson({ ...seedDefinition(i, baseMs, 'taskTopic', 'bench-store'), payload }),
    }));
    console.log(
      `seeded ${n} definitions (${JSON.stringify(payload).length}-byte payloads) in ${Math.round(seeded.ms)} ms`,
    );
    const rows: string[][] = [];
    for (const build of builds) {
      const dataDir = join(logDir, `data-${builds.indexOf(build)}`);
      let run = 0;
      const start = () =>
        startTaskapi(
          build,
          broker.brokers,
          dataDir,
          join(logDir, `taskapi-${builds.indexOf(build)}-${run++}.log`),
        );
      let s = await start();
      const token = await firstAdminToken(s.base, ADMIN);
      const ready = rss(s);
      const seen = await walk(s, token);
      rows.push([
        build,
        'first start',
        `${Math.round(s.readyMs)}`,
        s.line,
        ready,
        `${rss(s)}, ${seen} tasks paged`,
      ]);
      await stop(s);
      for (let i = 0; i < Number(values.restarts); i++) {
        s = await start();
        const ready = rss(s);
        // The first restart is paged through too: the memory of a long-running instance, without the build's.
        const paged =
          i === 0 ? `${await walk(s, await firstAdminToken(s.base, ADMIN)).then(() => rss(s))}` : '';
        rows.push([build, 'restart', `${Math.round(s.readyMs)}`, s.line, ready, paged]);
        await stop(s);
      }
      for (const dir of [dataDir])
        for (const sub of readdirOrEmpty(dir))
          rmSync(join(dir, sub, 'tasks'), { recursive: true, force: true });
      s = await start();
      rows.push([build, 'store deleted', `${Math.round(s.readyMs)}`, s.line, rss(s), '']);
      await stop(s);
    }
    printTable(
      [
        'build',
        'start',
        'ready ms',
        'its start-up line',
        'RSS MB ready (anon + file)',
        'RSS MB after paging',
      ],
      rows,
    );
    console.log(`logs: ${logDir}`);
  } finally {
    await broker.dispose(logDir);
  }
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
  } catch {
    return [];
  }
}

await main();
