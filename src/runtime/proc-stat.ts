import { readFileSync } from 'node:fs';

/**
 * The fields of a /proc/<pid>/stat line from field 3 (the state) on, or undefined for a line that
 * is not one. The command (field 2) is in parentheses and may hold spaces and parentheses itself:
 * the fields after it are counted from its last ')'.
 */
export function statFieldsAfterCommand(stat: string): string[] | undefined {
  const end = stat.lastIndexOf(')');
  return end < 0 ? undefined : stat.slice(end + 2).split(' ');
}

/**
 * Field 22 (start time, in clock ticks since boot) of a /proc/<pid>/stat line, or undefined for a
 * zombie or dead process or a line that is not one: with the pid, it names one process for the
 * whole boot (a pid reused later has another start time).
 */
export function startTimeIn(stat: string): string | undefined {
  const fields = statFieldsAfterCommand(stat);
  const state = fields?.[0];
  if (state === undefined || state === 'Z' || state === 'X' || state === 'x') return undefined;
  const startTime = fields?.[19];
  return startTime && /^\d+$/.test(startTime) ? startTime : undefined;
}

/** The start time of a live process (see startTimeIn), or undefined when it is gone or a zombie. */
export function liveProcessStartTime(pid: number | 'self', procRoot = '/proc'): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`${procRoot}/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  return startTimeIn(stat);
}
