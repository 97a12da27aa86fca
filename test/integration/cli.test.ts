import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { killAll, runCli } from './helpers/processes.js';

async function tempFile(content: string): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'tm-cli-')), 'schedule.json');
  await writeFile(file, content);
  return file;
}

const INVALID = `[
  { "Id": "1", "Cron": "* * * * * *", "Topic": "taskTopic", "TaskMessageTemplate": { "TaskProcessorName": "x" } },
  { "Id": "3", "Cron": "61 * * * * *", "Topic": "taskTopic", "TaskMessageTemplate": { "TaskProcessorName": "x" } },
  { "Id": "1", "Cron": "*/5 * * * *", "Topic": "bad topic", "TimeZone": "Nowhere/City", "TaskMessageTemplate": {} }
]`;

describe('taskscheduler commands that need no broker', () => {
  afterEach(killAll);

  describe('when the schedule file is invalid', () => {
    it('run should exit 2 listing every error, before touching Kafka', async () => {
      const file = await tempFile(INVALID);
      const r = await runCli('taskscheduler', [`-brokers=127.0.0.1:1`, `-schedule=${file}`]);
      expect(r.code).toBe(2);
      const lines = r.output.trim().split('\n');
      expect(lines).toEqual([
        `${file}: [1] (Id "3") Cron: "61 * * * * *": second must be 0-59 (got 61)`,
        `${file}: [2] (Id "1") TaskMessageTemplate.TaskProcessorName: is required`,
        `${file}: [2] (Id "1") Id: duplicate Id, already used by entry [0]`,
        `${file}: [2] (Id "1") TimeZone: "Nowhere/City" is not an IANA time zone`,
        `${file}: [2] (Id "1") Topic: "bad topic": topic name may only contain ASCII letters, digits, ".", "_" and "-"`,
        `${file}: 5 problem(s); nothing started`,
      ]);
    });

    it('validate should print the same errors and exit 2', async () => {
      const file = await tempFile(INVALID);
      const r = await runCli('taskscheduler', ['validate', '-s', file]);
      expect(r.code).toBe(2);
      expect(r.output).toContain('second must be 0-59');
      expect(r.output).toContain('5 problem(s)');
    });

    it('should name a malformed JSON file with line and column', async () => {
      const file = await tempFile('[\n  { "Id": "1" ]');
      const r = await runCli('taskscheduler', ['validate', '-s', file]);
      expect(r.code).toBe(2);
      expect(r.output).toMatch(new RegExp(`^${file}: malformed JSON at line 2, column \\d+`));
    });
  });

  describe('when the schedule file is valid', () => {
    it('validate should say so and exit 0', async () => {
      const r = await runCli('taskscheduler', ['validate']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('config/taskscheduler.json: valid, 4 entries (4 enabled)\n');
    });

    it('next should print fire times in the zone and in UTC', async () => {
      const file = await tempFile(
        '[{ "Id": "berlin", "Cron": "0 30 9 * * MON-FRI", "Topic": "t", "TimeZone": "Europe/Berlin", "TaskMessageTemplate": { "TaskProcessorName": "x" } },' +
          ' { "Id": "other", "Cron": "* * * * *", "Topic": "t", "TaskMessageTemplate": { "TaskProcessorName": "x" } }]',
      );
      const r = await runCli('taskscheduler', ['next', '-s', file, '--id', 'berlin', '-n', '3']);
      expect(r.code).toBe(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toBe('berlin: "0 30 9 * * MON-FRI" Europe/Berlin -> t x');
      expect(lines).toHaveLength(4);
      for (const line of lines.slice(1)) {
        const m = /^ {2}(\d{4}-\d\d-\d\d) 09:30:00 (CET|CEST|GMT\+1|GMT\+2)\s+(\S+)$/.exec(line);
        expect(m, line).not.toBeNull();
        const utc = new Date(m?.[3] ?? '');
        expect([7, 8]).toContain(utc.getUTCHours());
        expect([1, 2, 3, 4, 5]).toContain(utc.getUTCDay());
      }
    });

    it('next should refuse an unknown --id', async () => {
      const r = await runCli('taskscheduler', ['next', '--id', 'nope']);
      expect(r.code).toBe(2);
      expect(r.output).toContain('no entry with Id "nope"');
    });
  });

  describe('when the usage is wrong', () => {
    it('should exit 2 with the reason', async () => {
      const r = await runCli('taskconsumer', ['--concurrency', 'many']);
      expect(r.code).toBe(2);
      expect(r.output).toContain('--concurrency: expected a positive integer, got "many"');
      const l = await runCli('taskconsumer', ['-l=LOUD']);
      expect(l.code).toBe(2);
      expect(l.output).toContain('unknown level "LOUD"');
    });
  });
});
