// flake-hunt: runs vitest files N times each, every run on a fresh broker (its own data dir and ports, started and
// stopped by the tests' global setup), and reports each failure with its first error, then a table per file.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { failuresOf, readVitestJson } from './vitest-report.mjs';

const ROOT = resolve(import.meta.dirname, '../..');

const USAGE = `Usage: scripts/flake-hunt [options] FILE...

Runs each test file --runs times, one after another, each run against a fresh local broker (a new data dir on
--port), and prints every failure with its first error, then a table: file, runs, failed runs, seconds.

Options:
  --runs N       runs of each file (default 5)
  --port P       client port of the fresh brokers; P+1 is their controller port (default 19092)
  --out DIR      where each run's output and JSON report go (default .tmp/flake-hunt)
  --no-build     skip 'npm run build' (the integration tests run the built programs in dist/)
  -h, --help     this text

Exit codes: 0 no failure, 1 some run failed, 2 bad usage.`;

function usage(message) {
  if (message) console.error(`flake-hunt: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

let opts;
try {
  opts = parseArgs({
    allowPositionals: true,
    options: {
      runs: { type: 'string', default: '5' },
      port: { type: 'string', default: '19092' },
      out: { type: 'string', default: join(ROOT, '.tmp/flake-hunt') },
      'no-build': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  usage(err.message);
}
if (opts.values.help) {
  console.log(USAGE);
  process.exit(0);
}
const runs = Number(opts.values.runs);
const port = Number(opts.values.port);
if (!Number.isInteger(runs) || runs < 1)
  usage(`--runs must be a whole number ≥ 1, got '${opts.values.runs}'`);
if (!Number.isInteger(port) || port < 1024 || port > 65534)
  usage(`--port must be 1024-65534, got '${opts.values.port}'`);
const files = opts.positionals.map((f) => relative(ROOT, resolve(f)));
if (files.length === 0) usage('name at least one test file');
for (const f of files) if (!existsSync(join(ROOT, f))) usage(`no such file: ${f}`);

/** The vitest project a file belongs to, from its folder (vitest.config.ts). */
function projectOf(file) {
  const tier = file.split('/')[1];
  if (!['unit', 'integration', 'soak'].includes(tier))
    usage(`${file} is not under test/unit, test/integration or test/soak`);
  return tier;
}

/** The run in progress, so an interrupted hunt stops its vitest and its broker and removes the broker's data. */
const current = { child: undefined, env: undefined, dataDir: undefined };
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    current.child?.kill('SIGKILL');
    if (current.env)
      spawnSync('bash', [join(ROOT, 'scripts/kafka-local'), 'stop'], { env: current.env, stdio: 'inherit' });
    if (current.dataDir) rmSync(current.dataDir, { recursive: true, force: true });
    console.error(`flake-hunt: stopped by ${sig}`);
    process.exit(130);
  });
}

function run(cmd, args, env, logFile) {
  return new Promise((done) => {
    const child = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    current.child = child;
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('close', (code, signal) => {
      if (logFile) writeFileSync(logFile, output);
      done({ code, signal, output });
    });
  });
}

const outDir = resolve(opts.values.out);
mkdirSync(outDir, { recursive: true });
if (!opts.values['no-build']) {
  const built = await run('npm', ['run', 'build'], process.env, join(outDir, 'build.log'));
  if (built.code !== 0) {
    console.error(`flake-hunt: npm run build failed (see ${join(outDir, 'build.log')})`);
    process.exit(1);
  }
}

const vitest = join(ROOT, 'node_modules/.bin/vitest');
const table = [];
let anyFailed = false;
for (const file of files) {
  const row = { file, runs: 0, failed: 0, seconds: [], tests: new Map() };
  table.push(row);
  for (let i = 1; i <= runs; i++) {
    const stem = `${basename(file).replace(/\.test\.ts$/, '')}-${i}`;
    const report = join(outDir, `${stem}.json`);
    rmSync(report, { force: true });
    const dataDir = mkdtempSync(join(tmpdir(), 'flake-hunt-broker-'));
    const env = {
      ...process.env,
      CI: 'true',
      KAFKA_LOCAL_PORT: String(port),
      KAFKA_LOCAL_CONTROLLER_PORT: String(port + 1),
      KAFKA_LOCAL_DATA: dataDir,
    };
    delete env.KAFKA_BROKERS;
    Object.assign(current, { env, dataDir });
    const t0 = Date.now();
    const r = await run(
      vitest,
      [
        'run',
        '--project',
        projectOf(file),
        file,
        '--reporter=default',
        '--reporter=json',
        `--outputFile.json=${report}`,
      ],
      env,
      join(outDir, `${stem}.log`),
    );
    // The global setup stops the broker it started; a run killed before its teardown leaves one behind.
    await run('bash', [join(ROOT, 'scripts/kafka-local'), 'stop'], env);
    rmSync(dataDir, { recursive: true, force: true });
    Object.assign(current, { child: undefined, env: undefined, dataDir: undefined });
    const secs = (Date.now() - t0) / 1000;
    row.runs++;
    row.seconds.push(secs);
    const parsed = existsSync(report) ? readVitestJson(JSON.parse(readFileSync(report, 'utf8'))) : undefined;
    const failures = failuresOf(parsed, r.code ?? r.signal, r.output);
    if (failures.length > 0) {
      row.failed++;
      anyFailed = true;
    }
    for (const f of failures) {
      row.tests.set(f.name, (row.tests.get(f.name) ?? 0) + 1);
      console.log(
        `FAIL ${file} run ${i}: ${f.name}\n     ${f.error}\n     (log: ${relative(ROOT, join(outDir, `${stem}.log`))})`,
      );
    }
    console.log(`${failures.length ? 'red  ' : 'green'} ${file} run ${i}/${runs} in ${secs.toFixed(1)} s`);
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
console.log('\nfile | runs | failed runs | median s | failing tests');
for (const r of table) {
  const tests = [...r.tests].map(([n, c]) => `${n} (${c})`).join('; ') || '-';
  console.log(`${r.file} | ${r.runs} | ${r.failed} | ${median(r.seconds).toFixed(1)} | ${tests}`);
}
process.exit(anyFailed ? 1 : 0);
