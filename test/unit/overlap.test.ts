import { describe, expect, it } from 'vitest';
import { FireEncoder } from '../../src/scheduler/task-records.js';
import { describeNextFires } from '../../src/scheduler/next-command.js';
import {
  decodeTaskMessage,
  encodeTaskMessage,
  OVERLAP_HEADER,
  taskMessageOf,
  taskRecord,
} from '../../src/shared/codecs/task-message.js';
import { specHash } from '../../src/shared/codecs/scheduler-state.js';
import { parseScheduleText } from '../../src/shared/config/load.js';
import { ConfigError } from '../../src/shared/errors.js';
import { entryOfTask, parseDefinition, specOfTask } from '../../src/shared/tasks/definition.js';
import { RunHistory } from '../../src/api/run-history.js';
import { legacyStatus, stateOf } from '../../src/api/task-model.js';
import { parseStatusEvent, statusEvent } from '../../src/shared/codecs/task-event.js';
import { cronEntry, taskDefinition } from './helpers/entries.js';

const T0 = Date.parse('2026-11-22T10:00:00.000Z');
const iso = (ms: number): string => new Date(ms).toISOString();
const scheduler = { host: 'h1', pid: 42, group: 'g' };

describe('overlap policy', () => {
  describe('when a schedule file sets Overlap', () => {
    const file = (extra: string) =>
      `[{"Id":"a","Cron":"0 * * * * *","Topic":"taskTopic",${extra}"TaskMessageTemplate":{"TaskProcessorName":"p"}}]`;

    it('should load it, leave the definition hash alone, and show it in next', () => {
      const [e] = parseScheduleText('f.json', file('"Overlap":"skip",'));
      const [plain] = parseScheduleText('f.json', file(''));
      expect(e?.overlap).toBe('skip');
      expect(plain?.overlap).toBeUndefined();
      // It changes what consumers do, not when the schedule fires.
      expect(specHash(e!)).toBe(specHash(plain!));
      expect(describeNextFires([e!], T0, 1)).toContain('a: "0 * * * * *" UTC (overlap skip) -> taskTopic p');
      const [queue] = parseScheduleText('f.json', file('"Overlap":"queue",'));
      expect(describeNextFires([queue!], T0, 1)).toContain('a: "0 * * * * *" UTC -> taskTopic p');
    });

    it('should refuse another value with one line naming file, entry and field', () => {
      try {
        parseScheduleText('f.json', file('"Overlap":"sometimes",'));
        expect.unreachable();
      } catch (err) {
        expect(err).toBeInstanceOf(ConfigError);
        expect((err as ConfigError).message).toContain(
          'f.json: [0] (Id "a") Overlap: must be one of queue, skip, replace, allow',
        );
      }
    });
  });

  describe('when a fire is encoded', () => {
    it('should carry the policy in the header and the message, the same bytes as the typed encoder', () => {
      const e = cronEntry('a', '0 * * * * *', { overlap: 'replace' });
      const [task] = new FireEncoder('g', 0, scheduler).records([{ entry: e, scheduledFor: T0 }], T0 + 3);
      const typed = taskMessageOf(
        { scheduleId: 'a', processor: e.processor, overlap: 'replace' },
        T0,
        T0 + 3,
        scheduler,
      );
      expect(String(task?.value)).toBe(encodeTaskMessage(typed));
      expect(task?.headers?.[OVERLAP_HEADER]).toBe('replace');
      expect(taskRecord('t', typed).headers?.[OVERLAP_HEADER]).toBe('replace');
      expect(decodeTaskMessage(Buffer.from(String(task?.value))).overlap).toBe('replace');
    });

    it('should write nothing for queue, the default', () => {
      const e = cronEntry('a', '0 * * * * *', { overlap: 'queue' });
      const [task] = new FireEncoder('g', 0, scheduler).records([{ entry: e, scheduledFor: T0 }], T0 + 3);
      expect(String(task?.value)).not.toContain('overlap');
      expect(task?.headers?.[OVERLAP_HEADER]).toBeUndefined();
    });

    it('should refuse a message whose policy is not one', () => {
      const typed = taskMessageOf({ scheduleId: 'a', processor: 'p' }, T0, T0, scheduler);
      const bad = JSON.stringify({ ...typed, overlap: 'sometimes' });
      expect(() => decodeTaskMessage(Buffer.from(bad))).toThrow(/overlap/);
    });
  });

  describe('when an API task sets overlap', () => {
    it('should fire with it, and refuse a value that is none', () => {
      const def = taskDefinition('t', iso(T0), { schedule: { cron: '0 * * * * *' }, overlap: 'allow' });
      expect('def' in parseDefinition(Buffer.from(JSON.stringify(def)))).toBe(true);
      const spec = specOfTask(def);
      if (typeof spec === 'string') throw new Error(spec);
      expect(entryOfTask(def, spec).overlap).toBe('allow');
      expect('problem' in parseDefinition(Buffer.from(JSON.stringify({ ...def, overlap: 'x' })))).toBe(true);
    });
  });

  describe('when a run is SKIPPED', () => {
    it('should be a final run state, its reason kept, and the old services say CANCELLED', () => {
      const by = { host: 'c', pid: 1, role: 'consumer' as const };
      const ids = { taskId: `a@${iso(T0)}`, scheduleId: 'a' };
      const e = statusEvent(ids, 'SKIPPED', iso(T0 + 5), 0, by, {
        error: 'run a@x of the same schedule was still running (overlap skip)',
      });
      expect(parseStatusEvent(Buffer.from(JSON.stringify(e)))?.status).toBe('SKIPPED');
      const h = new RunHistory();
      h.fold(e);
      const run = h.latest('a');
      expect(run).toMatchObject({ state: 'SKIPPED', skipped: e.error, finishedAt: iso(T0 + 5) });
      expect(stateOf({ enabled: true }, run)).toBe('SKIPPED');
      expect(legacyStatus('SKIPPED')).toBe('CANCELLED');
    });
  });
});
