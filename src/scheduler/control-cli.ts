import { EVENTS_TOPIC, parseStatusEvents } from '../shared/codecs/task-event.js';
import { fireText } from '../shared/schedule/jitter.js';
import { optionsNote } from '../shared/schedule/model.js';
import { SCHEDULER_STATE_TOPIC } from '../shared/codecs/scheduler-state.js';
import { textTable } from '../shared/text-table.js';
import type { StatusEvent } from '../shared/codecs/task-event.js';
import type { KafkaClient } from '../shared/kafka/index.js';
import { sendControl } from '../shared/scheduler-control-client.js';
import type { ControlSend } from '../shared/scheduler-control-client.js';
import { withTaskIds } from '../shared/backfill.js';
import type { BackfillRange } from '../shared/backfill.js';
import type { ControlReply, ControlAction, EntryStatus } from '../shared/codecs/scheduler-control.js';

/** What `taskscheduler trigger|pause|resume|status|backfill` print, and their exit code. */
export interface ControlOutput {
  lines: string[];
  exitCode: number;
  json?: unknown;
}

const noAnswer = (group: string, timeoutMs: number): string =>
  `no instance of scheduler group ${group} answered within ${timeoutMs / 1000} s: is a taskscheduler with ` +
  `--group ${group} running and connected? (taskscheduler status --group ${group})`;

/** A request about one entry, sent to the group: the owner's reply, or undefined when none came in time. */
async function askOwner(
  kafka: KafkaClient,
  c: ControlSend,
  timeoutMs: number,
): Promise<ControlReply | undefined> {
  const statePartitions = await kafka.partitionCount(SCHEDULER_STATE_TOPIC);
  return (await sendControl(kafka, c, { timeoutMs, statePartitions })).replies[0];
}

/** `ok: <message> (answered by host:pid)`. */
function replyLine(reply: ControlReply): string {
  return `${reply.ok ? 'ok' : 'failed'}: ${reply.message} (answered by ${reply.from.host}:${reply.from.pid})`;
}

/** trigger, pause, resume: sent to the group; the owner of the entry answers. */
export async function runEntryCommand(
  kafka: KafkaClient,
  type: Exclude<ControlAction, 'status' | 'backfill'>,
  group: string,
  id: string,
  timeoutMs: number,
): Promise<ControlOutput> {
  const reply = await askOwner(kafka, { type, group, scheduleIds: [id] }, timeoutMs);
  if (!reply) return { lines: [noAnswer(group, timeoutMs)], exitCode: 1 };
  return { lines: [replyLine(reply)], exitCode: reply.ok ? 0 : 1 };
}

/**
 * backfill: sent to the group; the owner of the entry publishes (or with dryRun lists) the instants of the range
 * without a task. Prints its answer and each instant's taskId with what became of it, oldest first. Exit 0 when
 * done, 2 when the owner refused the range (in the future, too many instants, none), 1 for any other refusal.
 */
export async function runBackfill(
  kafka: KafkaClient,
  group: string,
  id: string,
  range: BackfillRange,
  timeoutMs: number,
): Promise<ControlOutput> {
  const reply = await askOwner(
    kafka,
    { type: 'backfill', group, scheduleIds: [id], backfill: range },
    timeoutMs,
  );
  if (!reply)
    return {
      lines: [
        `${noAnswer(group, timeoutMs)}; an instance from before backfill ignores the request (it logs ` +
          `"not a command"): upgrade it`,
      ],
      exitCode: 1,
    };
  const b = reply.backfill;
  const row = (what: string) => (at: string) => ({ at, what });
  const rows = b
    ? [
        ...b.published.map(row(b.dryRun ? 'would publish' : 'published')),
        ...b.present.map(row('already has a task')),
        ...b.pending.map(row('not reached yet')),
      ].sort((x, y) => (x.at < y.at ? -1 : 1))
    : [];
  const table = textTable(
    ['TASK ID', 'OUTCOME'],
    rows.map((r) => [`${id}@${r.at}`, r.what]),
  );
  return {
    lines: [replyLine(reply), ...(rows.length > 0 ? table : [])],
    exitCode: reply.ok ? 0 : reply.code === 'USAGE' ? 2 : 1,
    json: {
      ok: reply.ok,
      message: reply.message,
      answeredBy: reply.from,
      scheduleId: id,
      ...(b ? withTaskIds(id, b) : {}),
    },
  };
}

/** The latest outcome event of each schedule among the last `tail` events of each partition (PROGRESS and ALERT left out). */
export async function lastOutcomes(kafka: KafkaClient, tail: number): Promise<Map<string, StatusEvent>> {
  const out = new Map<string, StatusEvent>();
  for (const r of await kafka.readToEnd(EVENTS_TOPIC, 60_000, tail)) {
    for (const e of parseStatusEvents(r.value, r.headers)) {
      // PROGRESS says how far a run is, ALERT what was noticed about it: neither how it went.
      if (e.status === 'PROGRESS' || e.status === 'ALERT') continue;
      const prev = out.get(e.scheduleId);
      if (!prev || prev.at <= e.at) out.set(e.scheduleId, e);
    }
  }
  return out;
}

function describeOutcome(e: StatusEvent | undefined): string {
  if (!e) return '-';
  const extra =
    e.status === 'FAILED'
      ? ` (attempt ${e.attempt}${e.final ? ', dead-lettered' : ''}: ${e.error ?? '?'})`
      : '';
  return `${e.status} ${e.at}${extra}`;
}

/** status: every instance of the group answers for the partitions it owns. */
export async function runStatus(
  kafka: KafkaClient,
  group: string,
  ids: string[],
  { timeoutMs, eventsTail }: { timeoutMs: number; eventsTail: number },
): Promise<ControlOutput> {
  const statePartitions = await kafka.partitionCount(SCHEDULER_STATE_TOPIC);
  const [r, outcomes] = await Promise.all([
    sendControl(
      kafka,
      { type: 'status', group, ...(ids.length > 0 ? { scheduleIds: ids } : {}) },
      { timeoutMs, statePartitions },
    ),
    lastOutcomes(kafka, eventsTail),
  ]);
  if (r.replies.length === 0) return { lines: [noAnswer(group, timeoutMs)], exitCode: 1 };
  const rows: Array<EntryStatus & { owner: string; lastOutcome?: StatusEvent }> = [];
  for (const reply of r.replies) {
    const owner = `${reply.from.host}:${reply.from.pid}`;
    for (const e of reply.entries ?? []) rows.push({ ...e, owner, ...withOutcome(outcomes.get(e.id)) });
  }
  rows.sort((a, b) => a.id.localeCompare(b.id));
  const missing = ids.filter((id) => !rows.some((row) => row.id === id));
  const instances = r.replies.map(
    (x: ControlReply) =>
      `${x.from.host}:${x.from.pid} owns state partitions [${(x.partitions ?? []).join(',')}]` +
      (x.apiDefinitions === undefined ? '' : `, holds ${x.apiDefinitions} API task definition(s)`) +
      (x.ok ? '' : ` (not ready: ${x.message})`),
  );
  const lines = [
    `scheduler group ${group}: ${r.replies.length} instance(s)`,
    ...instances.map((l) => `  ${l}`),
    ...(r.unanswered.length > 0
      ? [
          `  no instance answered for state partitions [${r.unanswered.join(',')}] within ${timeoutMs / 1000} s`,
        ]
      : []),
    '',
    ...textTable(
      ['ID', 'STATE', 'OWNER', 'SCHEDULE', 'ZONE', 'LAST FIRE', 'NEXT FIRES', 'LAST OUTCOME'],
      rows.map((e) => [
        e.id,
        e.state,
        e.owner,
        `${e.spec}${optionsNote(e)}`,
        e.timeZone,
        e.lastFiredAt ?? '-',
        e.nextFireTimes.map((t, i) => fireText(t, e.nextDueTimes?.[i])).join(' ') || '-',
        describeOutcome(e.lastOutcome),
      ]),
    ),
    ...missing.map((id) => `${id}: no such schedule in group ${group}, or its owner did not answer`),
  ];
  const complete = r.unanswered.length === 0 && missing.length === 0;
  return {
    lines,
    exitCode: complete ? 0 : 1,
    json: {
      group,
      instances: r.replies.map((x) => ({
        ...x.from,
        partitions: x.partitions,
        ...(x.apiDefinitions === undefined ? {} : { apiDefinitions: x.apiDefinitions }),
        ready: x.ok,
        reason: x.message,
      })),
      unansweredPartitions: r.unanswered,
      entries: rows,
    },
  };
}

function withOutcome(e: StatusEvent | undefined): { lastOutcome?: StatusEvent } {
  return e ? { lastOutcome: e } : {};
}
