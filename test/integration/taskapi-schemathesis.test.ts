import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApi } from './helpers/api.js';
import { createTopics, deleteTopics, uniqueName } from './helpers/kafka.js';
import { killAll, ROOT } from './helpers/processes.js';

const run = promisify(execFile);

describe('taskapi under schemathesis (property-based requests from its own OpenAPI document)', () => {
  let topic: string;
  beforeEach(async () => {
    topic = uniqueName('st-tasks');
    await createTopics([topic]);
  });
  afterEach(async () => {
    await killAll();
    await deleteTopics([topic]);
  });

  it('should answer no request with a 5xx or with a response its schema does not allow', async () => {
    // Tasks it creates go to a topic and a scheduler group of their own: nothing else fires them.
    const api = await startApi(['--group', uniqueName('st-group'), '--topic', topic]);
    const st = (token: string, ...args: string[]) =>
      run(
        'bash',
        [join(ROOT, 'scripts/schemathesis.sh'), api.url, '-H', `Authorization: Bearer ${token}`, ...args],
        {
          cwd: ROOT,
          timeout: 600_000,
          maxBuffer: 64 * 1024 * 1024,
        },
      ).then(
        ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
        (err: { code?: number; stdout?: string; stderr?: string }) => ({
          code: err.code ?? -1,
          output: `${err.stdout ?? ''}${err.stderr ?? ''}`,
        }),
      );
    // Every route past the guard, as an admin; but the admin may not change or remove other users here: the users
    // topic is shared by the test files running beside this one (their admin must keep its password).
    const asAdmin = await st(api.token!, '--exclude-name-regex', '^(PUT|DELETE) /api/v1/users/');
    expect(asAdmin.code, asAdmin.output.slice(-6000)).toBe(0);
    // Those routes, as a viewer (own user only: the others answer 403).
    const viewer = uniqueName('st-viewer');
    const made = await api.call('POST', '/api/v1/users', {
      username: viewer,
      password: 'viewer-password',
      role: 'viewer',
    });
    expect(made.status, made.text).toBe(201);
    const asViewer = await st(
      await api.login(viewer, 'viewer-password'),
      '--include-name-regex',
      '^(PUT|DELETE) /api/v1/users/',
    );
    expect(asViewer.code, asViewer.output.slice(-6000)).toBe(0);
    expect(api.cli.alive, api.cli.output.slice(-2000)).toBe(true);
  }, 660_000);
});
