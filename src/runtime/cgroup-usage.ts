import { readFile } from 'node:fs/promises';
import type { ContainerStatsSample } from './types.js';

/** What a container's cgroup says about its use, without the network (cgroups do not count it). */
export type CgroupSample = Omit<ContainerStatsSample, 'network' | 'time'>;

/** A memory limit as berth reports it: the host's memory when there is none, or one at or above it. */
export function memoryLimitOf(limit: number, hostMemoryBytes: number): number {
  return limit > 0 && limit < hostMemoryBytes ? limit : hostMemoryBytes;
}

/** The text of /proc/<pid>/cgroup: the cgroups the process is in; undefined when it is gone. */
export function cgroupMembership(pid: number): Promise<string | undefined> {
  return readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => undefined);
}

/**
 * The use of the cgroup a process is in (`membership`, the text of its /proc/<pid>/cgroup), read
 * from the cgroup files themselves (v1 or v2, whichever it names), as `docker stats` reports it:
 * memory in use without the inactive page cache. Undefined when the cgroup is gone.
 */
export async function cgroupUsage(membership: string, hostMemoryBytes: number, cgroupRoot = '/sys/fs/cgroup'): Promise<CgroupSample | undefined> {
  // Each line: hierarchy-id:controllers:path ("0::path" is the v2 hierarchy).
  const lines = membership
    .split('\n')
    .map((line) => /^\d+:([^:]*):(\/.*)$/.exec(line.trim()))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ controllers: m[1]!.split(','), path: m[2]!, dir: m[1]! }));
  const v1 = (controller: string) => {
    const line = lines.find((l) => l.controllers.includes(controller));
    return line && `${cgroupRoot}/${line.dir}${line.path}`;
  };
  const read = (path: string) => readFile(path, 'utf8');
  try {
    const memory = v1('memory');
    if (memory) {
      const cpuacct = v1('cpuacct');
      const pids = v1('pids');
      const [usage, stat, limit, cpu, processes] = await Promise.all([
        read(`${memory}/memory.usage_in_bytes`),
        read(`${memory}/memory.stat`),
        read(`${memory}/memory.limit_in_bytes`),
        cpuacct ? read(`${cpuacct}/cpuacct.usage`) : '0',
        pids ? read(`${pids}/pids.current`) : '0',
      ]);
      return {
        cpuUsageNanos: Number(cpu.trim()) || 0,
        memoryUsageBytes: Math.max(0, Number(usage.trim()) - statValue(stat, 'total_inactive_file')),
        memoryLimitBytes: memoryLimitOf(Number(limit.trim()), hostMemoryBytes),
        pids: Number(processes.trim()) || 0,
      };
    }
    const unified = lines.find((l) => l.dir === '');
    if (!unified) return undefined;
    const dir = `${cgroupRoot}${unified.path}`;
    const [usage, stat, limit, cpu, processes] = await Promise.all([
      read(`${dir}/memory.current`),
      read(`${dir}/memory.stat`),
      read(`${dir}/memory.max`),
      read(`${dir}/cpu.stat`),
      read(`${dir}/pids.current`).catch(() => '0'),
    ]);
    return {
      cpuUsageNanos: statValue(cpu, 'usage_usec') * 1000,
      memoryUsageBytes: Math.max(0, Number(usage.trim()) - statValue(stat, 'inactive_file')),
      memoryLimitBytes: memoryLimitOf(limit.trim() === 'max' ? 0 : Number(limit.trim()), hostMemoryBytes),
      pids: Number(processes.trim()) || 0,
    };
  } catch {
    return undefined;
  }
}

/** The value of `key` in a "key value" per line file (memory.stat, cpu.stat); 0 when absent. */
function statValue(text: string, key: string): number {
  const match = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}
