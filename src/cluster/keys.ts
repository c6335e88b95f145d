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

  /** The last part of a key under `dir` (a task or agent id), or undefined for a key that is not directly under it. */
  static leaf(dir: string, key: string): string | undefined {
    if (!key.startsWith(dir)) return undefined;
    const rest = key.slice(dir.length);
    return rest === '' || rest.includes('/') ? undefined : rest;
  }
}
