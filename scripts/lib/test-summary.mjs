// Prints the summary that closes every test run: per tier its counts and seconds, the failed tests with their
// first error, and the 10 slowest integration tests, so a regression in time shows in every CI log.
// Usage: node scripts/lib/test-summary.mjs REPORTS_DIR (written by scripts/run-tests)
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { failuresOf, readVitestJson } from './vitest-report.mjs';

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
  // vitest may end without a report (crashed, or killed), or exit non-zero with every test passed (a failing hook):
  // the tier failed whatever it printed.
  const tierFailures = failuresOf(r, t.code, '');
  failed += tierFailures.length;
  for (const f of tierFailures)
    failures.push(`${f.name === '(no report)' ? t.name : f.name}\n      ${f.error}`);
  const cells = r
    ? [r.tests.length, r.passed, tierFailures.length, r.skipped]
    : ['-', '-', tierFailures.length, '-'];
  passed += r?.passed ?? 0;
  rows.push(
    `${t.name.padEnd(12)}${pad(cells[0], 7)}${pad(cells[1], 8)}${pad(cells[2], 8)}${pad(cells[3], 9)}${pad(t.seconds.toFixed(1), 10)}`,
  );
  if (r && t.name === 'integration') slowest = [...r.tests].sort((a, b) => b.ms - a.ms).slice(0, 10);
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
