import { createHash } from 'node:crypto';
import { alertTaskId } from '../shared/schedule/alerts.js';
import type { AlertKind } from '../shared/schedule/alerts.js';
import type { AnyAuditEvent, StatusEvent } from '../shared/codecs/task-event.js';

/** How many alerts taskapi keeps (the newest), and how many acknowledgements. */
export const ALERTS_KEPT = 1000;
const ACKS_KEPT = 10_000;

/** One alert as `GET /api/v1/alerts` shows it. */
export interface AlertItem {
  /** A short id of the alert (for the acknowledge route): the same for every raise of it. */
  id: string;
  kind: AlertKind;
  scheduleId: string;
  /** The run it is about. */
  taskId: string;
  reason: string;
  /** When it was raised. */
  at: string;
  /** Which component raised it: consumer or scheduler. */
  raisedBy: string;
  /** The task delivering it (`alert/<scheduleId>/<kind>@<instant>`), whose runs show the delivery. */
  deliveryTaskId: string;
  /** Once acknowledged: by whom and when. */
  acknowledged?: { user: string; at: string };
}

/** The instant of a run's taskId (`<scheduleId>@<instant>`). */
function instantOf(taskId: string): string {
  const at = taskId.lastIndexOf('@');
  return at < 0 ? '' : taskId.slice(at + 1);
}

/** The id of an alert: a hash of its delivery taskId, safe in a URL path. */
export function alertIdOf(deliveryTaskId: string): string {
  return createHash('sha256').update(deliveryTaskId).digest('hex').slice(0, 20);
}

/**
 * The alerts taskapi knows: the ALERT events of `taskmanager.events` it reads (the newest {@link ALERTS_KEPT}), and
 * the acknowledgements of `taskmanager.audit` (`alert.acknowledged`), read again at every start, so an
 * acknowledgement outlives a restart. The two topics are read apart: an acknowledgement read before its alert still
 * closes it.
 */
export class AlertBook {
  private readonly alerts = new Map<string, AlertItem>();
  private readonly acks = new Map<string, { user: string; at: string }>();

  constructor(private readonly keep = ALERTS_KEPT) {}

  /** Folds a status event: an ALERT is kept (a re-raise of one kept changes nothing). */
  onEvent(e: StatusEvent): void {
    if (e.status !== 'ALERT' || !e.alert) return;
    const deliveryTaskId = alertTaskId({
      kind: e.alert.kind,
      scheduleId: e.scheduleId,
      scheduledFor: instantOf(e.taskId),
    });
    const id = alertIdOf(deliveryTaskId);
    if (this.alerts.has(id)) return;
    this.alerts.set(id, {
      id,
      kind: e.alert.kind,
      scheduleId: e.scheduleId,
      taskId: e.taskId,
      reason: e.alert.reason,
      at: e.at,
      raisedBy: e.by.role,
      deliveryTaskId,
    });
    if (this.alerts.size > this.keep) this.alerts.delete(this.alerts.keys().next().value as string);
  }

  /** Folds an audit event: an `alert.acknowledged` closes its alert. */
  onAudit(e: AnyAuditEvent): void {
    const a = e as { action: string; alert?: unknown };
    if (a.action !== 'alert.acknowledged' || typeof a.alert !== 'string') return;
    this.acknowledged(a.alert, e.user, e.at);
  }

  /** Marks an alert acknowledged (as its audit event says). */
  acknowledged(id: string, user: string, at: string): void {
    this.acks.delete(id);
    this.acks.set(id, { user, at });
    if (this.acks.size > ACKS_KEPT) this.acks.delete(this.acks.keys().next().value as string);
  }

  get(id: string): AlertItem | undefined {
    const a = this.alerts.get(id);
    if (!a) return undefined;
    const ack = this.acks.get(id);
    return ack ? { ...a, acknowledged: ack } : a;
  }

  /** Newest first: the open ones, or all kept (`all`), with their acknowledgements. */
  list(all: boolean): AlertItem[] {
    const out: AlertItem[] = [];
    for (const a of this.alerts.values()) {
      const item = this.get(a.id) ?? a;
      if (all || !item.acknowledged) out.push(item);
    }
    return out.sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : 0));
  }
}
