import type { TaskCgroupLimits, TaskCgroups } from '../../src/runtime/task-cgroups.js';

/** Task cgroups kept in memory, for unit tests of the engine's rules: which task has one, with what limits. */
export class FakeTaskCgroups implements TaskCgroups {
  readonly cgroups = new Map<string, TaskCgroupLimits>();
  /** Paths that may not be removed yet (a process still in them). */
  readonly busy = new Set<string>();
  /** Fails prepare() with this message. */
  failPrepare: string | undefined;
  private readonly removalWaiters = new Map<string, () => void>();

  /** Resolves when `path` is removed. */
  removal(path: string): Promise<void> {
    return new Promise((resolve) => this.removalWaiters.set(path, resolve));
  }

  pathOf(agentId: string, taskId: string): string {
    return `/berth/${agentId}/${taskId}`;
  }

  async prepare(path: string, limits: TaskCgroupLimits): Promise<void> {
    if (this.failPrepare) throw new Error(this.failPrepare);
    this.cgroups.set(path, { ...limits });
  }

  async remove(path: string): Promise<void> {
    if (this.busy.has(path)) throw new Error(`cgroup ${path} still holds processes`);
    this.cgroups.delete(path);
    this.removalWaiters.get(path)?.();
  }

  async list(agentId: string): Promise<string[]> {
    const prefix = `/berth/${agentId}/`;
    return [...this.cgroups.keys()].filter((p) => p.startsWith(prefix)).map((p) => p.slice(prefix.length));
  }
}
