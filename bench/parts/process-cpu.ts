import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of every process on the machine at one moment, by pid (/proc/<pid>/stat, 100 ticks a
 * second), with its start time (ticks since boot), which tells a pid used again from the same one.
 */
export type ProcessCpu = Map<number, { name: string; startedAt: number; ownMs: number; reapedChildrenMs: number }>;

export function processCpu(): ProcessCpu {
  const processes: ProcessCpu = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue; // it ended meanwhile
    }
    // The name is in parentheses and may hold spaces; the fields after it are numbers.
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+/g, 'N');
    const fields = stat
      .slice(stat.lastIndexOf(')') + 2)
      .split(' ')
      .map(Number);
    processes.set(Number(entry), { name, startedAt: fields[19]!, ownMs: (fields[11]! + fields[12]!) * 10, reapedChildrenMs: (fields[13]! + fields[14]!) * 10 });
  }
  return processes;
}

/**
 * Where the CPU went between two moments, per process name (digits folded), divided by `per`: the
 * processes' own time, and apart the time of the children they reaped meanwhile (programs that
 * ran and ended, such as CNI plugins). The largest `top`, as "name: ms; …".
 */
export function cpuByProcess(before: ProcessCpu, after: ProcessCpu, per: number, top = 10): string {
  const byName = new Map<string, number>();
  const add = (name: string, ms: number) => byName.set(name, (byName.get(name) ?? 0) + ms);
  for (const [pid, now] of after) {
    // The same process, unless its pid was used again. Not by name: a kernel worker's name says
    // what it works on at the moment, and changes.
    const then = before.get(pid)?.startedAt === now.startedAt ? before.get(pid) : undefined;
    add(now.name, now.ownMs - (then?.ownMs ?? 0));
    add(`${now.name}'s ended children`, now.reapedChildrenMs - (then?.reapedChildrenMs ?? 0));
  }
  return [...byName]
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, ms]) => `${name}: ${(ms / per).toFixed(0)}`)
    .join('; ');
}
