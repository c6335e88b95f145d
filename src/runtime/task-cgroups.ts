import { mkdir, readdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** The limits a task's containers share: its task-level CPU units and memory. */
export interface TaskCgroupLimits {
  /** CPU units, 1024 per core: a hard quota of that many cores' time, and as many shares. 0: none. */
  cpuUnits: number;
  /** Memory (RAM) of all the task's processes together, in bytes. 0: none. */
  memoryBytes: number;
}

/**
 * The parent cgroups that hold a task's containers, so that the task's limits apply to all of them
 * together: `/berth/<agent>/<task>`, which the runtimes are given as the containers' cgroup parent.
 */
export interface TaskCgroups {
  /** The cgroup path (from the hierarchy's root) of a task's cgroup. */
  pathOf(agentId: string, taskId: string): string;
  /** Creates the task's cgroup (again, after a restart) and writes its limits. */
  prepare(path: string, limits: TaskCgroupLimits): Promise<void>;
  /** Removes the task's cgroup from every hierarchy; fails while a process is still in it. Gone already: success. */
  remove(path: string): Promise<void>;
  /** The task ids that have a cgroup under the agent's. */
  list(agentId: string): Promise<string[]>;
}

/** One mounted cgroup hierarchy: v1 (with its controllers) or the v2 unified one. */
interface Hierarchy {
  mountPoint: string;
  version: 1 | 2;
  controllers: string[];
}

const ROOT = 'berth';
/** The CFS period berth sets (the kernel's default), in microseconds; quotas are parts of it. */
const CPU_PERIOD_US = 100_000;
/** The smallest quota the kernel accepts, in microseconds. */
const MIN_CPU_QUOTA_US = 1000;

/**
 * Reads the cgroup hierarchies from a mountinfo file (/proc/self/mountinfo): the v1 ones by
 * controller, and the v2 one. Mounts of part of a hierarchy (a root other than /) are skipped:
 * paths under them would not be the paths the runtimes use.
 */
export function parseCgroupMounts(mountinfo: string): Hierarchy[] {
  const hierarchies: Hierarchy[] = [];
  for (const line of mountinfo.split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after) continue;
    const fields = before.split(' ');
    const [fsType, , superOptions = ''] = after.split(' ');
    const root = fields[3];
    const mountPoint = fields[4]?.replace(/\\040/g, ' ');
    if (root !== '/' || !mountPoint) continue;
    if (fsType === 'cgroup2') hierarchies.push({ mountPoint, version: 2, controllers: [] });
    else if (fsType === 'cgroup') hierarchies.push({ mountPoint, version: 1, controllers: superOptions.split(',').filter((o) => !['rw', 'ro'].includes(o)) });
  }
  return hierarchies;
}

/** The hierarchy whose task cgroups berth lists: v1's memory one (always made), else the v2 one. */
function homeOf(hierarchies: Hierarchy[]): Hierarchy | undefined {
  return hierarchies.find((h) => h.controllers.includes('memory')) ?? hierarchies.find((h) => h.version === 2);
}

/** The v2 weight (1–10000) of a v1 cpu.shares value (2–262144), as runc converts it. */
export function cpuWeightOf(shares: number): number {
  const clamped = Math.min(262_144, Math.max(2, shares));
  return Math.floor(1 + ((clamped - 2) * 9999) / 262_142);
}

/** The CFS quota in microseconds per CPU_PERIOD_US for a number of CPU units. */
export function cpuQuotaOf(cpuUnits: number): number {
  return Math.max(MIN_CPU_QUOTA_US, Math.floor((cpuUnits * CPU_PERIOD_US) / 1024));
}

/**
 * Task cgroups in the host's cgroup file system, for runtimes that use the cgroupfs driver (runc's
 * default, and dockerd's unless it is told to use systemd): berth creates the task's cgroup and
 * writes its limits, runc creates each container's cgroup inside it. On cgroup v1 the limits go to
 * the memory and cpu hierarchies, and the task's cgroup is removed from every hierarchy runc
 * created it in; on v2 the controllers are enabled on the way down from the root.
 */
export class HostTaskCgroups implements TaskCgroups {
  private hierarchies: Hierarchy[] | undefined;

  constructor(private readonly mountinfoPath = '/proc/self/mountinfo') {}

  pathOf(agentId: string, taskId: string): string {
    return `/${ROOT}/${agentId}/${taskId}`;
  }

  async prepare(path: string, limits: TaskCgroupLimits): Promise<void> {
    const hierarchies = await this.mounted();
    const v1 = hierarchies.filter((h) => h.version === 1);
    if (v1.length > 0) {
      const memory = v1.find((h) => h.controllers.includes('memory'));
      const cpu = v1.find((h) => h.controllers.includes('cpu'));
      if (!memory || !cpu) throw new Error('the host mounts no cgroup v1 memory or cpu hierarchy');
      const memoryDir = join(memory.mountPoint, path);
      const cpuDir = join(cpu.mountPoint, path);
      await mkdir(memoryDir, { recursive: true });
      await mkdir(cpuDir, { recursive: true });
      await writeFile(join(memoryDir, 'memory.limit_in_bytes'), limits.memoryBytes > 0 ? String(limits.memoryBytes) : '-1');
      await writeFile(join(cpuDir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
      await writeFile(join(cpuDir, 'cpu.cfs_quota_us'), limits.cpuUnits > 0 ? String(cpuQuotaOf(limits.cpuUnits)) : '-1');
      await writeFile(join(cpuDir, 'cpu.shares'), String(limits.cpuUnits > 0 ? Math.max(2, limits.cpuUnits) : 1024));
      return;
    }
    const unified = hierarchies.find((h) => h.version === 2);
    if (!unified) throw new Error('the host mounts no cgroup hierarchy');
    await this.enableControllers(unified.mountPoint, path);
    const dir = join(unified.mountPoint, path);
    await writeFile(join(dir, 'memory.max'), limits.memoryBytes > 0 ? String(limits.memoryBytes) : 'max');
    await writeFile(join(dir, 'cpu.max'), `${limits.cpuUnits > 0 ? cpuQuotaOf(limits.cpuUnits) : 'max'} ${CPU_PERIOD_US}`);
    await writeFile(join(dir, 'cpu.weight'), String(cpuWeightOf(limits.cpuUnits > 0 ? limits.cpuUnits : 1024)));
  }

  /**
   * Creates each cgroup from the root down to `path`, enabling the cpu, memory and pids
   * controllers for the children of each one above it (v2 gives a child only what its parent
   * enables).
   */
  private async enableControllers(mountPoint: string, path: string): Promise<void> {
    const parts = path.split('/').filter(Boolean);
    let dir = mountPoint;
    for (const part of parts) {
      const available = (await readFile(join(dir, 'cgroup.controllers'), 'utf8')).split(/\s+/);
      const wanted = ['cpu', 'memory', 'pids'].filter((c) => available.includes(c));
      if (wanted.length > 0) await writeFile(join(dir, 'cgroup.subtree_control'), wanted.map((c) => `+${c}`).join(' '));
      dir = join(dir, part);
      await mkdir(dir, { recursive: true });
    }
  }

  async remove(path: string): Promise<void> {
    const hierarchies = await this.mounted();
    const home = homeOf(hierarchies);
    // The hierarchy list() reads goes last: a cgroup left in another one is found again.
    for (const hierarchy of [...hierarchies.filter((h) => h !== home), ...(home ? [home] : [])]) {
      try {
        await rmdir(join(hierarchy.mountPoint, path));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        if ((error as NodeJS.ErrnoException).code === 'EBUSY') throw new Error(`cgroup ${path} still holds processes or containers' cgroups (${hierarchy.mountPoint})`);
        throw error;
      }
    }
  }

  async list(agentId: string): Promise<string[]> {
    const home = homeOf(await this.mounted());
    if (!home) return [];
    const entries = await readdir(join(home.mountPoint, ROOT, agentId), { withFileTypes: true }).catch(() => []);
    return entries.filter((e) => e.isDirectory()).map((e) => e.name);
  }

  private async mounted(): Promise<Hierarchy[]> {
    this.hierarchies ??= parseCgroupMounts(await readFile(this.mountinfoPath, 'utf8'));
    return this.hierarchies;
  }
}
