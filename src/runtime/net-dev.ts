import { readFile } from 'node:fs/promises';
import type { ContainerStatsSample } from './types.js';

type NetworkCounters = ContainerStatsSample['network'];

/**
 * Traffic counters of a network namespace, read from /proc/<pid>/net/dev of a process inside it
 * and summed over its interfaces, loopback excluded. Zero when the process is gone.
 */
export async function namespaceTraffic(pid: number): Promise<NetworkCounters> {
  const text = await readFile(`/proc/${pid}/net/dev`, 'utf8').catch(() => '');
  return parseNetDev(text);
}

/** Sums /proc/net/dev's lines ("  eth0: rxBytes rxPackets … txBytes txPackets …"), loopback excluded. */
export function parseNetDev(text: string): NetworkCounters {
  const total: NetworkCounters = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
  for (const line of text.split('\n')) {
    const match = /^\s*([^:\s]+):\s*(.*)$/.exec(line);
    if (!match || match[1] === 'lo') continue;
    const fields = match[2]!.trim().split(/\s+/).map(Number);
    if (fields.length < 10) continue;
    total.rxBytes += fields[0]!;
    total.rxPackets += fields[1]!;
    total.txBytes += fields[8]!;
    total.txPackets += fields[9]!;
  }
  return total;
}
