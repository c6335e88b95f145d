import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU time of every process on the machine at one moment, by pid (/proc/<pid>/stat, 100 ticks a
 * second), with its start time (ticks since boot), which tells a pid used again from the same one.
 */
export type ProcessCpu = Map<number, { name: string; startedAt: number; ownMs: number; reapedChildrenMs: number }>;

/** One process's /proc/<pid>/stat: its name (digits folded), start time and CPU, the reaped children's apart (ms). */
export interface ProcessStat {
  name: string;
  startedAt: number;
  userMs: number;
  systemMs: number;
  reapedChildrenUserMs: number;
  reapedChildrenSystemMs: number;
}

/** Reads /proc/<pid>/stat (`self` for this process); undefined when the process ended meanwhile. */
export function processStat(pid: number | 'self'): ProcessStat | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The name is in parentheses and may hold spaces; the fields after it are numbers.
  const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/\d+/g, 'N');
  const fields = stat
    .slice(stat.lastIndexOf(')') + 2)
    .split(' ')
    .map(Number);
  const ms = (ticks: number | undefined) => ticks! * 10;
  return { name, startedAt: fields[19]!, userMs: ms(fields[11]), systemMs: ms(fields[12]), reapedChildrenUserMs: ms(fields[13]), reapedChildrenSystemMs: ms(fields[14]) };
}

export function processCpu(): ProcessCpu {
  const processes: ProcessCpu = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = processStat(Number(entry));
    if (!stat) continue;
    processes.set(Number(entry), { name: stat.name, startedAt: stat.startedAt, ownMs: stat.userMs + stat.systemMs, reapedChildrenMs: stat.reapedChildrenUserMs + stat.reapedChildrenSystemMs });
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
