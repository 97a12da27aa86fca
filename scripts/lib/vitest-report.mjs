// Reads the JSON report of vitest's json reporter (jest's format) into the few facts our scripts print.

/** The lines of a text without ANSI colours. */
function plainLines(text) {
  return (
    String(text ?? '')
      // eslint-disable-next-line no-control-regex
      .replace(/\x1b\[[0-9;]*m/g, '')
      .split('\n')
  );
}

/** The first non-empty line of a text, without ANSI colours, cut to 300 characters. */
export function firstLine(text) {
  return (plainLines(text).find((l) => l.trim() !== '') ?? '').trim().slice(0, 300);
}

/**
 * The gist of a failure message: its first line, and when the message runs over several lines (an assertion with
 * a long custom message: vitest puts "expected … to be …" at its end), its last line before the stack too.
 */
export function firstError(text) {
  const lines = plainLines(text);
  const stack = lines.findIndex((l) => /^\s+(at |❯ )/.test(l));
  const message = (stack < 0 ? lines : lines.slice(0, stack)).map((l) => l.trim()).filter(Boolean);
  const first = (message[0] ?? '').slice(0, 300);
  const last = message.length > 1 ? (message.at(-1) ?? '').slice(-300) : '';
  return last ? `${first} … ${last}` : first;
}

/**
 * @returns {{ passed: number, failed: number, skipped: number, tests: Array<{ file: string, name: string,
 *   state: string, ms: number, error: string }>, fileErrors: string[] }}
 */
export function readVitestJson(report) {
  const tests = [];
  const fileErrors = [];
  for (const f of report.testResults ?? []) {
    const file = String(f.name ?? '').replace(/^.*?\/(test\/)/, '$1');
    // A file that failed outside any test (import error, a failing beforeAll) says so in its message.
    if (f.status === 'failed' && f.message) fileErrors.push(`${file}: ${firstError(f.message)}`);
    for (const a of f.assertionResults ?? []) {
      tests.push({
        file,
        name: [...(a.ancestorTitles ?? []), a.title].join(' > '),
        state: a.status,
        ms: a.duration ?? 0,
        error: firstError((a.failureMessages ?? [])[0]),
      });
    }
  }
  const count = (state) => tests.filter((t) => t.state === state).length;
  return {
    passed: count('passed'),
    failed: count('failed'),
    skipped: tests.length - count('passed') - count('failed'),
    tests,
    fileErrors,
  };
}

/**
 * Every failure of a run: its failed tests, the files that failed outside a test, and, when vitest exited non-zero
 * with neither (or wrote no report), the run itself. `output` is what vitest printed.
 * @returns {Array<{ name: string, error: string }>}
 */
export function failuresOf(parsed, exitCode, output) {
  if (!parsed)
    return [{ name: '(no report)', error: `exit ${exitCode}: ${plainLines(output).slice(-5).join(' | ')}` }];
  const out = parsed.tests
    .filter((t) => t.state === 'failed')
    .map((t) => ({ name: `${t.file} > ${t.name}`, error: t.error }));
  for (const e of parsed.fileErrors) out.push({ name: '(file)', error: e });
  if (out.length === 0 && exitCode !== 0)
    out.push({ name: '(run)', error: `vitest exited ${exitCode}: ${firstLine(output)}` });
  return out;
}
