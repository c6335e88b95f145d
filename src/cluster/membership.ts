import type { MembershipView } from '../server/task-service.js';

/** The parts of the agent's link to etcd that must all work for it to count as connected. */
export type MembershipPart = 'registration' | 'assignments' | 'reports';

/**
 * How long a part may fail before the agent counts as cut off. When one etcd member stops, the
 * client moves the lease keep-alive and the watch to another member within a second or two (a few
 * quick retries); that is a failover, not a lost connection.
 */
export const FAILOVER_GRACE_MS = 5000;

interface Failure {
  reason: string;
  /** When the part started failing. */
  since: number;
  /** From when it counts: after the grace, or at once for the agent that has not connected yet. */
  countsFrom: number;
}

/**
 * The agent's membership state, written by the cluster member's parts and read by the server and
 * the metrics: connected unless a part has failed for longer than the failover grace, and then the
 * reason of that part.
 */
export class Membership {
  private readonly failures = new Map<MembershipPart, Failure>();
  private connectedSince: number;
  appliedRevision = 0;
  assignedTasks = 0;

  constructor(
    readonly prefix: string,
    readonly address: string,
    private readonly graceMs = FAILOVER_GRACE_MS,
    private readonly now: () => number = Date.now,
  ) {
    // Not connected until the parts say they work.
    const start = now();
    this.connectedSince = start;
    this.failures.set('registration', { reason: 'registration: connecting to etcd', since: start, countsFrom: start });
  }

  ok(part: MembershipPart): void {
    const failure = this.failures.get(part);
    if (!failure) return;
    const now = this.now();
    const wasConnected = this.lasting(now) === undefined;
    this.failures.delete(part);
    if (!wasConnected && this.lasting(now) === undefined) this.connectedSince = now;
  }

  /** `part` fails; a part that keeps failing keeps the time it started failing. */
  failed(part: MembershipPart, reason: string): void {
    const prior = this.failures.get(part);
    const now = this.now();
    const since = prior?.since ?? now;
    this.failures.set(part, { reason: `${part}: ${reason}`.slice(0, 512), since, countsFrom: prior?.countsFrom ?? since + this.graceMs });
  }

  get connected(): boolean {
    return this.lasting(this.now()) === undefined;
  }

  /** The failures that count at `now` (failed longer than the grace). */
  private lasting(now: number): Failure[] | undefined {
    const counting = [...this.failures.values()].filter((f) => f.countsFrom <= now);
    return counting.length > 0 ? counting : undefined;
  }

  view(): MembershipView {
    const lasting = this.lasting(this.now());
    const cutOffSince = lasting && Math.max(this.connectedSince, Math.min(...lasting.map((f) => f.since)));
    return {
      connected: lasting === undefined,
      reason: lasting?.[0]!.reason ?? '',
      since: new Date(cutOffSince ?? this.connectedSince),
      appliedRevision: this.appliedRevision,
      assignedTasks: this.assignedTasks,
      prefix: this.prefix,
      address: this.address,
    };
  }
}
