// Prints the summary that closes every test run: per tier its counts and seconds, the failed tests with their
// first error, and the 10 slowest integration tests, so a regression in time shows in every CI log.
// Usage: node scripts/lib/test-summary.mjs REPORTS_DIR (written by scripts/run-tests)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readVitestJson } from './vitest-report.mjs';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: test-summary.mjs REPORTS_DIR');
  process.exit(2);
}
const tiersFile = join(dir, 'tiers.txt');
const tiers = existsSync(tiersFile)
  ? readFileSync(tiersFile, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [name, us, code] = l.split(' ');
        return { name, seconds: Number(us) / 1e6, code: Number(code) };
      })
  : [];

const pad = (v, n) => String(v).padStart(n);
let passed = 0;
let failed = 0;
const failures = [];
const rows = [];
let slowest = [];
for (const t of tiers) {
  const file = join(dir, `${t.name}.json`);
  const r = existsSync(file) ? readVitestJson(JSON.parse(readFileSync(file, 'utf8'))) : undefined;
  if (!r) {
    // vitest ended without a report (crashed, or killed): the tier failed whatever it printed.
    failed++;
    failures.push(`${t.name}: no report (exit ${t.code})`);
    rows.push(
      `${t.name.padEnd(12)}${pad('-', 7)}${pad('-', 8)}${pad('-', 8)}${pad('-', 9)}${pad(t.seconds.toFixed(1), 10)}`,
    );
    continue;
  }
  passed += r.passed;
  // A file that failed outside its tests (an import error, a failing hook) counts as one failure.
  const tierFailed =
    r.failed + r.fileErrors.length + (r.failed === 0 && r.fileErrors.length === 0 && t.code !== 0 ? 1 : 0);
  failed += tierFailed;
  for (const x of r.tests.filter((x) => x.state === 'failed'))
    failures.push(`${x.file} > ${x.name}\n      ${x.error}`);
  for (const e of r.fileErrors) failures.push(e);
  if (tierFailed > r.failed + r.fileErrors.length) failures.push(`${t.name}: vitest exited ${t.code}`);
  rows.push(
    `${t.name.padEnd(12)}${pad(r.tests.length, 7)}${pad(r.passed, 8)}${pad(tierFailed, 8)}${pad(r.skipped, 9)}${pad(t.seconds.toFixed(1), 10)}`,
  );
  if (t.name === 'integration') slowest = [...r.tests].sort((a, b) => b.ms - a.ms).slice(0, 10);
}

console.log('\n=== test summary ===');
console.log(
  `${'tier'.padEnd(12)}${pad('tests', 7)}${pad('passed', 8)}${pad('failed', 8)}${pad('skipped', 9)}${pad('seconds', 10)}`,
);
for (const r of rows) console.log(r);
if (slowest.length > 0) {
  console.log('\nslowest integration tests:');
  for (const x of slowest) console.log(`${pad((x.ms / 1000).toFixed(1), 7)} s  ${x.file} > ${x.name}`);
}
if (failures.length > 0) {
  console.log('\nfailed:');
  for (const f of failures) console.log(`  ${f}`);
}
console.log(`\ntests: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
