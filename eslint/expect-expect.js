/**
 * `local/expect-expect`: every `it`/`test` callback asserts: it calls `expect`, or a function of the same file
 * that does (such as `const refused = (p) => expect(p).rejects…`). A test that only waits cannot fail on a wrong
 * outcome; a `waitFor` that throws at its deadline checks that something happened, not what. The rule of
 * eslint-plugin-vitest of the same name, in a few lines instead of a dependency.
 */
const TEST_CALLS = new Set(['it', 'test']);
const NOT_RUN = new Set(['skip', 'todo']);

/** `it`, `it.only`, `test.skip`, `it.each(table)` → the base name, else undefined. */
function baseName(callee) {
  if (callee.type === 'Identifier') return callee.name;
  if (callee.type === 'MemberExpression') return baseName(callee.object);
  if (callee.type === 'CallExpression') return baseName(callee.callee);
  return undefined;
}

/** Whether the subtree names `expect` or one of `asserting` (functions of this file that assert). */
function asserts(node, asserting) {
  if (node.type === 'Identifier') return node.name === 'expect' || asserting.has(node.name);
  for (const [key, value] of Object.entries(node)) {
    if (key === 'parent') continue;
    for (const child of Array.isArray(value) ? value : [value])
      if (child && typeof child.type === 'string' && asserts(child, asserting)) return true;
  }
  return false;
}

const isFunction = (n) =>
  n?.type === 'ArrowFunctionExpression' ||
  n?.type === 'FunctionExpression' ||
  n?.type === 'FunctionDeclaration';

export default {
  meta: {
    type: 'problem',
    docs: { description: 'every test asserts: its callback calls expect' },
    messages: { noExpect: 'Test "{{name}}" has no expect: assert the outcome a user would notice.' },
    schema: [],
  },
  create(context) {
    const tests = [];
    /** name → body of each named function of the file (declarations and `const f = () => …`). */
    const helpers = new Map();
    return {
      FunctionDeclaration(node) {
        if (node.id) helpers.set(node.id.name, node.body);
      },
      VariableDeclarator(node) {
        if (node.id.type === 'Identifier' && isFunction(node.init)) helpers.set(node.id.name, node.init.body);
      },
      CallExpression(node) {
        const base = baseName(node.callee);
        if (!base || !TEST_CALLS.has(base)) return;
        if (node.callee.type === 'MemberExpression' && NOT_RUN.has(node.callee.property.name)) return;
        const fn = node.arguments.find(isFunction);
        if (fn) tests.push({ node, fn });
      },
      'Program:exit'() {
        // Helpers that assert, through other helpers too: grow the set until it stops growing.
        const asserting = new Set();
        for (let grew = true; grew;) {
          grew = false;
          for (const [name, body] of helpers)
            if (!asserting.has(name) && asserts(body, asserting)) grew = asserting.add(name) !== undefined;
        }
        for (const { node, fn } of tests) {
          if (asserts(fn.body, asserting)) continue;
          const title = node.arguments[0];
          const name = title?.type === 'Literal' ? String(title.value) : '(unnamed)';
          context.report({ node, messageId: 'noExpect', data: { name } });
        }
      },
    };
  },
};
