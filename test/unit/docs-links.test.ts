import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
/** Folders that are not the repository's own text: installed, built, generated or local state (see .gitignore). */
const SKIP = new Set([
  '.git',
  'node_modules',
  'dist',
  '.kafka-local',
  '.tmp',
  '.cache',
  'coverage',
  'test-results',
]);
const TEXT =
  /\.(ts|js|mjs|md|sh|json|ya?ml|properties)$|^(Dockerfile|run|demo|kafka-local|flake-hunt|run-tests)$/;

function files(dir = ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory())
      return SKIP.has(name) || relative(ROOT, path) === join('bench', 'results') ? [] : files(path);
    return TEXT.test(name) ? [path] : [];
  });
}

const docs = [join(ROOT, 'README.md'), ...files(join(ROOT, 'docs')).filter((f) => f.endsWith('.md'))];

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as dashes; repeats get -1, -2, … */
function anchors(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of withoutCodeBlocks(markdown)) {
    const m = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .toLowerCase()
      .replace(/[^\p{L}\p{N} _-]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

/** The lines outside fenced code blocks. */
function withoutCodeBlocks(markdown: string): string[] {
  let fenced = false;
  return markdown.split('\n').filter((line) => {
    if (/^\s*```/.test(line)) {
      fenced = !fenced;
      return false;
    }
    return !fenced;
  });
}

/** Relative link targets of a markdown file (outside code), as written. */
function relativeLinks(markdown: string): string[] {
  const text = withoutCodeBlocks(markdown)
    .map((line) => line.replace(/`[^`]*`/g, ''))
    .join('\n');
  return [...text.matchAll(/\]\(([^)\s]+)\)/g)]
    .map((m) => m[1]!)
    .filter((target) => !/^[a-z][a-z0-9+.-]*:/i.test(target));
}

/** Why `target` (a path, relative to `from`'s folder, with an optional #anchor) does not resolve; undefined if it does. */
function problem(from: string, target: string): string | undefined {
  const [path = '', anchor] = target.split('#');
  const file = path === '' ? from : resolve(dirname(from), path);
  if (!file.startsWith(ROOT + sep)) return 'points outside the repository';
  if (!existsSync(file)) return 'no such file';
  if (anchor !== undefined && file.endsWith('.md') && !anchors(readFileSync(file, 'utf8')).has(anchor))
    return `no heading with anchor #${anchor}`;
  return undefined;
}

describe('README.md and docs/*.md', () => {
  it('should have every relative link and anchor resolve inside the repository', () => {
    const broken: string[] = [];
    let links = 0;
    for (const doc of docs)
      for (const target of relativeLinks(readFileSync(doc, 'utf8'))) {
        links++;
        const why = problem(doc, target);
        if (why) broken.push(`${relative(ROOT, doc)}: ${target}: ${why}`);
      }
    expect(links).toBeGreaterThan(50);
    expect(broken).toEqual([]);
  });
});

describe('references to the docs from code, scripts and config', () => {
  it('should name docs files and sections that exist', () => {
    const broken: string[] = [];
    let refs = 0;
    for (const file of files().filter((f) => !f.endsWith('.md')))
      for (const m of readFileSync(file, 'utf8').matchAll(/\bdocs\/[\w.-]+\.md(?:#[\w-]+)?/g)) {
        refs++;
        const why = problem(join(ROOT, 'README.md'), m[0]);
        if (why) broken.push(`${relative(ROOT, file)}: ${m[0]}: ${why}`);
      }
    expect(refs).toBeGreaterThan(10);
    expect(broken).toEqual([]);
  });
});

describe('the repository', () => {
  it('should point at no file outside it', () => {
    // Files that lived beside the repository once; built from parts so this test does not name them itself.
    const outside = new RegExp(
      [
        `\\b(${['SPEC', 'STYLE', 'peers', 'kafkajs-notes', 'kafka-from-maven'].join('|')})\\.md\\b`,
        ['', 'work', ''].join('/'),
      ]
        .map((p) => `(${p})`)
        .join('|'),
    );
    const found = files().flatMap((f) =>
      readFileSync(f, 'utf8')
        .split('\n')
        .map((line, i) => ({ line, at: `${relative(ROOT, f)}:${i + 1}` }))
        .filter(({ line }) => outside.test(line))
        .map(({ line, at }) => `${at}: ${line.trim()}`),
    );
    expect(found).toEqual([]);
  });
});
