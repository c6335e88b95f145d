import type { MembershipView } from '../server/task-service.js';

/** The parts of the agent's link to etcd that must all work for it to count as connected. */
export type MembershipPart = 'registration' | 'assignments' | 'reports';

/**
 * The agent's membership state, written by the cluster member's parts and read by the server and
 * the metrics: connected while every part works, else the reason of the first that does not.
 */
export class Membership {
  private readonly failures = new Map<MembershipPart, string>();
  private connectedSince = new Date();
  private wasConnected = false;
  appliedRevision = 0;
  assignedTasks = 0;

  constructor(
    readonly prefix: string,
    readonly address: string,
  ) {
    // Not connected until the parts say they work.
    this.failures.set('registration', 'connecting to etcd');
  }

  ok(part: MembershipPart): void {
    this.failures.delete(part);
    this.changed();
  }

  failed(part: MembershipPart, reason: string): void {
    this.failures.set(part, `${part}: ${reason}`.slice(0, 512));
    this.changed();
  }

  get connected(): boolean {
    return this.failures.size === 0;
  }

  private changed(): void {
    if (this.connected !== this.wasConnected) {
      this.wasConnected = this.connected;
      this.connectedSince = new Date();
    }
  }

  view(): MembershipView {
    return {
      connected: this.connected,
      reason: [...this.failures.values()][0] ?? '',
      since: this.connectedSince,
      appliedRevision: this.appliedRevision,
      assignedTasks: this.assignedTasks,
      prefix: this.prefix,
      address: this.address,
    };
  }
}
