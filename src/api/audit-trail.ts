import type { Clock } from '../shared/clock.js';
import { errorMessage } from '../shared/errors.js';
import type { Follower, KafkaClient, OutRecord } from '../shared/kafka/index.js';
import type { Logger } from '../shared/logger.js';
import { AuditView, DEFAULT_AUDIT_KEEP } from './audit-view.js';
import { AUDIT_TOPIC, parseAuditEvent } from '../shared/codecs/task-event.js';
import type { AnyAuditEvent } from '../shared/codecs/task-event.js';

/** Where audit records go: taskapi's producer (KafkaStore.send). */
export interface AuditSender {
  send(records: OutRecord[]): Promise<void>;
}

/**
 * Writes one audit event. The change it records is already made and stays made if this fails: the failure is
 * logged (`what` names the event), never answered.
 */
export async function sendAudit(
  o: { store: AuditSender; logger: Logger },
  record: OutRecord,
  what: string,
): Promise<void> {
  await o.store
    .send([record])
    .catch((err: unknown) => o.logger.warn(`audit event ${what} not written: ${errorMessage(err)}`));
}

/** How `GET /api/v1/audit` stands: no topic to read, still reading the kept part, or following its end. */
export type AuditStatus = 'no-topic' | 'reading' | 'current';

export interface AuditTrailOptions {
  kafka: KafkaClient;
  store: AuditSender;
  logger: Logger;
  clock: Clock;
  /** Entries kept in memory. @default 10000 */
  keep?: number;
  /** The scheduler group of a task, for events written without one. */
  groupOf?: (id: string) => string | undefined;
  /** A topic missing at start is looked for again by requests at most this often, ms. @default 60000 */
  recheckMs?: number;
  /** Takes each audit event read (the alert book: its acknowledgements, read again at every start). */
  alerts?: { onAudit(e: AnyAuditEvent): void };
}

/**
 * taskapi's audit trail: writes audit events, and keeps the newest `keep` of `taskmanager.audit` in an
 * {@link AuditView}. Each partition is read from `keep` records before its end (the newest `keep` of the whole
 * topic are among those), then followed. Without the topic taskapi runs all the same: it warns once, the trail is
 * empty, and requests look for the topic again (at most every `recheckMs`) so that one created later is followed.
 */
export class AuditTrail {
  readonly view: AuditView;
  private follower: Follower | undefined;
  private state: AuditStatus | 'stopped' = 'reading';
  private lastCheck = -Infinity;
  private starting: Promise<void> | undefined;
  private warned = false;

  constructor(private readonly o: AuditTrailOptions) {
    this.view = new AuditView(o.keep ?? DEFAULT_AUDIT_KEEP, o.groupOf);
  }

  get status(): AuditStatus {
    return this.state === 'stopped' ? 'no-topic' : this.state;
  }

  /**
   * Starts following the topic: resolves once the follower runs (before it read the kept part), or the topic was
   * found missing; never rejects (a failure is logged, and a later request tries again).
   */
  start(): Promise<void> {
    return this.tryFollow();
  }

  /** Writes one audit event (see {@link sendAudit}). */
  send(record: OutRecord, what: string): Promise<void> {
    return sendAudit(this.o, record, what);
  }

  /** Writes one audit event that is the action itself (an acknowledgement): a failure is the caller's. */
  write(record: OutRecord): Promise<void> {
    return this.o.store.send([record]);
  }

  /** Called by each read of the trail: a topic missing so far is looked for again, at most every recheckMs. */
  poke(): void {
    if (this.state !== 'no-topic' || this.starting) return;
    if (this.o.clock.now() - this.lastCheck < (this.o.recheckMs ?? 60_000)) return;
    void this.tryFollow();
  }

  async stop(): Promise<void> {
    this.state = 'stopped';
    await this.starting;
    await this.follower?.stop();
  }

  private tryFollow(): Promise<void> {
    this.starting ??= this.follow().finally(() => (this.starting = undefined));
    return this.starting;
  }

  private async follow(): Promise<void> {
    this.lastCheck = this.o.clock.now();
    const { kafka, logger } = this.o;
    try {
      if (!(await kafka.existingTopics([AUDIT_TOPIC])).has(AUDIT_TOPIC)) {
        this.state = 'no-topic';
        if (!this.warned)
          logger.warn(
            `topic ${AUDIT_TOPIC} does not exist: the audit trail (GET /api/v1/audit, the dashboard) is empty and changes are not audited until it is created with scripts/create-topics.sh`,
          );
        this.warned = true;
        return;
      }
      const keep = BigInt(this.view.keep);
      const ends = await kafka.endOffsets(AUDIT_TOPIC);
      const from = new Map([...ends].map(([p, end]) => [p, (end > keep ? end - keep : 0n).toString()]));
      const follower = await kafka.follow(
        AUDIT_TOPIC,
        (r) => {
          this.view.add(r);
          const e = this.o.alerts ? parseAuditEvent(r.value) : undefined;
          if (e) this.o.alerts?.onAudit(e);
        },
        { fromOffsets: from },
      );
      if (this.state === 'stopped') return void (await follower.stop());
      this.follower = follower;
      this.state = 'reading';
      if (this.warned) logger.info(`${AUDIT_TOPIC} exists now: the audit trail follows it`);
      void follower.caughtUp.then(() => {
        if (this.state === 'reading') this.state = 'current';
      });
    } catch (err) {
      if (this.state === 'reading') this.state = 'no-topic';
      logger.warn(`cannot read ${AUDIT_TOPIC} (${errorMessage(err)}): the audit trail tries again later`);
    }
  }
}
