import { describe, expect, it } from 'vitest';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError, formatProblem } from '../../src/shared/errors.js';

const OLD_TOOL_FILE = `[
  { "Id": "1", "Cron": "* * * * * *", "Topic": "taskTopic",
    "TaskMessageTemplate": {
      "TaskProcessorName": "github.com/darciopacifico/taskmanager/processor.InvoiceProcessor",
      "TaskParam": "task param xyz",
      "Payload": ["Ireland", "Germany", "Italy"] } },
  { "Id": "3", "Cron": "* * * * * *", "Topic": "taskTopic",
    "TaskMessageTemplate": {
      "TaskProcessorName": "github.com/darciopacifico/taskmanager/processor.BirthdayProcessor",
      "TaskParam": "task param xyz" } }
]`;

function problemsOf(text: string): string[] {
  try {
    parseScheduleText('f.json', text);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems.map(formatProblem);
    throw err;
  }
  return [];
}

describe('schedule file loading', () => {
  describe("when given the old Go tool's file unmodified", () => {
    it('should load both entries with defaults and carry the Payload', () => {
      const entries = parseScheduleText('f.json', OLD_TOOL_FILE);
      expect(entries).toHaveLength(2);
      expect(entries[0]).toMatchObject({
        id: '1',
        spec: { kind: 'cron', cron: '* * * * * *' },
        topic: 'taskTopic',
        timeZone: 'UTC',
        enabled: true,
        misfire: 'fire-once',
        misfireWindowSeconds: 3600,
        param: 'task param xyz',
        payload: ['Ireland', 'Germany', 'Italy'],
      });
      expect(entries[1]?.payload).toBeUndefined();
    });

    it('should return frozen entries', () => {
      const entries = parseScheduleText('f.json', OLD_TOOL_FILE);
      expect(Object.isFrozen(entries)).toBe(true);
      expect(Object.isFrozen(entries[0])).toBe(true);
      expect(Object.isFrozen(entries[0]?.payload)).toBe(true);
    });
  });

  describe('when the file has many problems', () => {
    it('should report every one at once, each naming file, entry and JSON path', () => {
      const problems = problemsOf(`[
        { "Id": "1", "Cron": "* * * * * *", "Topic": "t", "TaskMessageTemplate": { "TaskProcessorName": "x" } },
        { "Id": "3", "Cron": "61 * * * * *", "Topic": "t", "TaskMessageTemplate": { "TaskProcessorName": "x" } },
        { "Id": "1", "Cron": "* * * * * *", "Topic": "no spaces", "TimeZone": "Mars/Olympus",
          "TaskMessageTemplate": { "TaskProcessorName": "x" } },
        { "Id": "4", "Cron": "* * *", "Topic": "t", "Misfire": "later", "TaskMessageTemplate": {} }
      ]`);
      expect(problems).toEqual([
        'f.json: [1] (Id "3") Cron: "61 * * * * *": second must be 0-59 (got 61)',
        'f.json: [2] (Id "1") Id: duplicate Id, already used by entry [0]',
        'f.json: [2] (Id "1") TimeZone: "Mars/Olympus" is not an IANA time zone',
        'f.json: [2] (Id "1") Topic: "no spaces": topic name may only contain ASCII letters, digits, ".", "_" and "-"',
        'f.json: [3] (Id "4") Misfire: must be one of skip, fire-once, fire-all',
        'f.json: [3] (Id "4") TaskMessageTemplate.TaskProcessorName: is required',
        'f.json: [3] (Id "4") Cron: "* * *": has 3 fields; expected 6 (seconds first) or 5 (minute precision)',
      ]);
    });
  });

  describe('when a field is unknown or mistyped', () => {
    it('should name it', () => {
      expect(
        problemsOf(
          '[{ "Id": 7, "Cron": "* * * * *", "Topic": "t", "Crom": "x", "TaskMessageTemplate": { "TaskProcessorName": "x" } }]',
        ),
      ).toEqual(['f.json: [0] Crom: is not a known field', 'f.json: [0] Id: must be string']);
    });
  });

  describe('when the JSON is malformed', () => {
    it('should say where', () => {
      expect(problemsOf('[\n  { "Id": "1", }\n]')).toEqual([
        expect.stringMatching(/^f\.json: malformed JSON at line 2, column \d+: /),
      ]);
    });
  });

  describe('when the top level is neither an array of entries nor an object with Schedules', () => {
    it('should say so', () => {
      expect(problemsOf('{}')).toEqual(['f.json: Schedules: is required']);
      expect(problemsOf('42')).toEqual([
        'f.json: must be an array of entries, or an object with Schedules (and Calendars)',
      ]);
    });
  });

  describe('when optional fields are given', () => {
    it('should normalize them', () => {
      const [e] = parseScheduleText(
        'f.json',
        '[{ "Id": "z", "Cron": " 0 0 9 * * MON-FRI ", "Topic": "a.b_c-d", "TimeZone": "Europe/Berlin", "Enabled": false, "Misfire": "fire-all", "MisfireWindowSeconds": 60, "TaskMessageTemplate": { "TaskProcessorName": "x", "Payload": {"a": 1} } }]',
      );
      expect(e).toMatchObject({
        spec: { kind: 'cron', cron: '0 0 9 * * MON-FRI' },
        timeZone: 'Europe/Berlin',
        enabled: false,
        misfire: 'fire-all',
        misfireWindowSeconds: 60,
        payload: { a: 1 },
      });
    });
  });
});
