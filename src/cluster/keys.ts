/**
 * The fleet's key layout in etcd, under one prefix (the cluster config's `prefix`). Agents write
 * their node record and their task reports; controllers write assignments. Ids are task and agent
 * ids ([A-Za-z0-9][A-Za-z0-9_.-]*), so "/" only ever separates parts.
 */
export class ClusterKeys {
  constructor(readonly prefix: string) {}

  /** Every agent's registration. */
  get nodes(): string {
    return `${this.prefix}nodes/`;
  }

  node(agentId: string): string {
    return `${this.nodes}${agentId}`;
  }

  /** The assignments of one agent. */
  assignmentsOf(agentId: string): string {
    return `${this.prefix}assignments/${agentId}/`;
  }

  assignment(agentId: string, taskId: string): string {
    return `${this.assignmentsOf(agentId)}${taskId}`;
  }

  /** The task reports of one agent. */
  reportsOf(agentId: string): string {
    return `${this.prefix}status/${agentId}/`;
  }

  report(agentId: string, taskId: string): string {
    return `${this.reportsOf(agentId)}${taskId}`;
  }

  /** Cluster tasks as submitted. */
  get tasks(): string {
    return `${this.prefix}tasks/`;
  }

  task(clusterTaskId: string): string {
    return `${this.tasks}${clusterTaskId}`;
  }

  /** The controller's placement of each cluster task. */
  get placements(): string {
    return `${this.prefix}placements/`;
  }

  placement(clusterTaskId: string): string {
    return `${this.placements}${clusterTaskId}`;
  }

  /** What the controllers assigned to each agent. */
  get ledgers(): string {
    return `${this.prefix}ledger/`;
  }

  ledger(agentId: string): string {
    return `${this.ledgers}${agentId}`;
  }

  /** Operators' instructions per agent (cordon, drain). */
  get controls(): string {
    return `${this.prefix}controls/`;
  }

  control(agentId: string): string {
    return `${this.controls}${agentId}`;
  }

  /** The controllers' election. */
  get election(): string {
    return `${this.prefix}controller`;
  }

  /** The last part of a key under `dir` (a task or agent id), or undefined for a key that is not directly under it. */
  static leaf(dir: string, key: string): string | undefined {
    if (!key.startsWith(dir)) return undefined;
    const rest = key.slice(dir.length);
    return rest === '' || rest.includes('/') ? undefined : rest;
  }
}
