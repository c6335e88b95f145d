import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import type { HostCapacity } from './host-resources.js';

export interface CapacitySettings {
  /** 0: detect (cores × 1024). */
  cpuUnits: number;
  /** 0: detect (MemTotal − reservedMemoryMib). */
  memoryMib: number;
  reservedMemoryMib: number;
  reservedTcpPorts: number[];
  reservedUdpPorts: number[];
  dynamicPortRange: { first: number; last: number };
  /** Empty: ask nvidia-smi, when it is installed. */
  gpuIds: string[];
}

/** Present while NVIDIA's kernel driver is loaded: without it nvidia-smi finds no GPU. */
const NVIDIA_DRIVER = '/proc/driver/nvidia';

/**
 * GPU UUIDs reported by nvidia-smi; none when NVIDIA's driver is not loaded (nvidia-smi is then not
 * run: looking for it on the PATH costs the start-up some 20 ms), or it is missing or fails.
 */
export function discoverGpus(timeoutMs = 10_000, driver = NVIDIA_DRIVER): Promise<string[]> {
  if (!existsSync(driver)) return Promise.resolve([]);
  return new Promise((resolve) => {
    execFile('nvidia-smi', ['--query-gpu=uuid', '--format=csv,noheader'], { timeout: timeoutMs }, (error, stdout) => {
      if (error) return resolve([]);
      resolve(
        stdout
          .split('\n')
          .map((line) => line.trim())
          .filter((line) => line.startsWith('GPU-')),
      );
    });
  });
}

/**
 * The host's capacity for tasks, from settings where given and from the machine otherwise. The
 * agent's own TCP ports (its API, metrics and metadata listeners) are reserved with the others.
 */
export async function hostCapacity(settings: CapacitySettings, agentTcpPorts: number[] = [], gpus: () => Promise<string[]> = discoverGpus): Promise<HostCapacity> {
  return {
    cpuUnits: settings.cpuUnits || cpus().length * 1024,
    memoryMib: settings.memoryMib || Math.floor(totalmem() / (1024 * 1024)) - settings.reservedMemoryMib,
    reservedTcpPorts: [...new Set([...settings.reservedTcpPorts, ...agentTcpPorts])],
    reservedUdpPorts: [...settings.reservedUdpPorts],
    dynamicPortRange: { ...settings.dynamicPortRange },
    gpuIds: settings.gpuIds.length > 0 ? [...settings.gpuIds] : await gpus(),
  };
}
