import { readFile } from 'node:fs/promises';
import { V1Metrics, V2Metrics } from '../../gen/containerd/cgroups/metrics.js';
import { RuntimeError } from '../errors.js';
import { type CgroupSample, memoryLimitOf } from '../cgroup-usage.js';

/**
 * Decodes the metrics containerd's Tasks.Metrics returns (a cgroup v1 or v2 message in an Any).
 * Memory in use leaves out inactive page cache, as `docker stats` does; a limit at or above the
 * host's memory (or none) is reported as the host's memory.
 */
export function decodeCgroupMetrics(data: { typeUrl: string; value: Uint8Array }, hostMemoryBytes: number, operation: string): CgroupSample {
  const limitOf = (value: string) => memoryLimitOf(Number(value), hostMemoryBytes);
  if (data.typeUrl.endsWith('io.containerd.cgroups.v1.Metrics')) {
    const v1 = V1Metrics.decode(data.value);
    return {
      cpuUsageNanos: v1.cpu?.usage?.total ?? 0,
      memoryUsageBytes: Math.max(0, (v1.memory?.usage?.usage ?? 0) - (v1.memory?.totalInactiveFile ?? 0)),
      memoryLimitBytes: limitOf(v1.memory?.usage?.limit ?? '0'),
      pids: v1.pids?.current ?? 0,
    };
  }
  if (data.typeUrl.endsWith('io.containerd.cgroups.v2.Metrics')) {
    const v2 = V2Metrics.decode(data.value);
    return {
      cpuUsageNanos: (v2.cpu?.usageUsec ?? 0) * 1000,
      memoryUsageBytes: Math.max(0, (v2.memory?.usage ?? 0) - (v2.memory?.inactiveFile ?? 0)),
      memoryLimitBytes: limitOf(v2.memory?.usageLimit ?? '0'),
      pids: v2.pids?.current ?? 0,
    };
  }
  throw new RuntimeError('internal', operation, `metrics of an unknown type ${data.typeUrl}`);
}

/**
 * True when the kernel's OOM killer killed a process of the container's cgroup: `oom_kill` in
 * memory.oom_control (v1) or memory.events (v2) of the container's cgroup (a path from the hierarchy's root).
 */
export async function oomKillsIn(cgroupPath: string, cgroupRoot = '/sys/fs/cgroup'): Promise<boolean> {
  for (const path of [`${cgroupRoot}/memory${cgroupPath}/memory.oom_control`, `${cgroupRoot}${cgroupPath}/memory.events`]) {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    const count = text && /^oom_kill (\d+)$/m.exec(text)?.[1];
    if (count !== undefined && count !== '') return Number(count) > 0;
  }
  return false;
}
