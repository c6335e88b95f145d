import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';

export interface CgroupLimits {
  memoryBytes: number;
  memoryReservationBytes: number;
  cpuShares: number;
  /** "max" when unlimited. */
  pids: string;
}

/**
 * The limits the kernel applies to a running container, read from its own cgroup (v1) through
 * exec: the same check on every runtime, and proof that the limit is in force, not only asked for.
 */
export async function cgroupLimits(runtime: ContainerRuntime, id: string): Promise<CgroupLimits> {
  const read = async (path: string) => {
    const result = await runtime.exec(id, ['cat', `/sys/fs/cgroup/${path}`], { timeoutMs: 10_000 });
    if (result.exitCode !== 0) throw new Error(`cannot read ${path}: ${result.output}`);
    return result.output.toString('utf8').trim();
  };
  return {
    memoryBytes: Number(await read('memory/memory.limit_in_bytes')),
    memoryReservationBytes: Number(await read('memory/memory.soft_limit_in_bytes')),
    cpuShares: Number(await read('cpu/cpu.shares')),
    pids: await read('pids/pids.max'),
  };
}
