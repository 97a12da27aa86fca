// Reads the JSON report of vitest's json reporter (jest's format) into the few facts our scripts print.

/** The first non-empty line of a text, without ANSI colours, cut to 300 characters. */
export function firstLine(text) {
  // eslint-disable-next-line no-control-regex
  const plain = String(text ?? '').replace(/\x1b\[[0-9;]*m/g, '');
  const line = plain.split('\n').find((l) => l.trim() !== '') ?? '';
  return line.trim().slice(0, 300);
}

/**
 * The gist of a failure message: its first line, and when the message runs over several lines (an assertion with
 * a long custom message: vitest puts "expected … to be …" at its end), its last line before the stack too.
 */
export function firstError(text) {
  // eslint-disable-next-line no-control-regex
  const plain = String(text ?? '').replace(/\x1b\[[0-9;]*m/g, '');
  const lines = plain.split('\n');
  const stack = lines.findIndex((l) => /^\s+(at |❯ )/.test(l));
  const message = (stack < 0 ? lines : lines.slice(0, stack)).map((l) => l.trim()).filter(Boolean);
  const first = (message[0] ?? '').slice(0, 300);
  const last = message.length > 1 ? (message.at(-1) ?? '').slice(-300) : '';
  return last ? `${first} … ${last}` : first;
}

/**
 * @returns {{ passed: number, failed: number, skipped: number, tests: Array<{ file: string, name: string,
 *   state: string, ms: number, error: string }>, fileErrors: string[], files: Array<{ file: string, ms: number }> }}
 */
export function readVitestJson(report) {
  const tests = [];
  const fileErrors = [];
  const files = [];
  for (const f of report.testResults ?? []) {
    const file = String(f.name ?? '').replace(/^.*?\/(test\/)/, '$1');
    files.push({ file, ms: Math.max(0, (f.endTime ?? 0) - (f.startTime ?? 0)) });
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
    files,
  };
}
