import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { basename, join } from 'node:path';

/** A CPU cgroup of its own for one process and what it starts, as systemd gives every service. */
export interface OwnCgroup {
  /** Moves what is left in it back to the parent and removes it; says so on stderr when it cannot (it never throws). */
  remove(): void;
}

/**
 * Puts the process `pid` (every thread) in a new CPU cgroup under the root, with the default
 * weight, as systemd runs an agent in a unit of its own (berth.service beside containerd.service,
 * or a user's session beside both): the CPU is then shared between the cgroups first, so a burst
 * of runtime processes (runc, shims, many at once) no longer gets the CPU in proportion to their
 * number against the agent's one thread, as it does in one flat cgroup. Needs root; cgroup v1 (the
 * cpu hierarchy) or v2 (the cpu controller is enabled for the root's children).
 *
 * More processes may be given (`pid` a list). With `idle`, the cgroup is SCHED_IDLE against the
 * others (`cpu.idle`, Linux 5.15 and later): its processes run only on CPU time no other cgroup
 * wants, as processes on another machine would take none.
 */
export function ownCpuCgroup(pid: number | number[], name: string, options: { idle?: boolean } = {}): OwnCgroup {
  const unified = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const parent = unified ? '/sys/fs/cgroup' : '/sys/fs/cgroup/cpu';
  if (!existsSync(parent)) throw new Error(`no CPU cgroup hierarchy at ${parent}`);
  if (unified && !readFileSync(join(parent, 'cgroup.subtree_control'), 'utf8').split(/\s+/).includes('cpu')) appendFileSync(join(parent, 'cgroup.subtree_control'), '+cpu');
  const pids = Array.isArray(pid) ? pid : [pid];
  const path = join(parent, `${name}-${pids[0]}`);
  mkdirSync(path);
  if (options.idle) appendFileSync(join(path, 'cpu.idle'), '1');
  for (const one of pids) appendFileSync(join(path, 'cgroup.procs'), String(one));
  return {
    remove() {
      try {
        for (const left of readFileSync(join(path, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
          try {
            appendFileSync(join(parent, 'cgroup.procs'), left);
          } catch {
            // It exited meanwhile.
          }
        }
        rmdirSync(path);
      } catch (error) {
        console.error(`could not remove the cgroup ${path}: ${(error as Error).message}`);
      }
    },
  };
}

/**
 * The pids of the processes named `names` (their program's file name) whose command line mentions
 * `dir`: the daemons of a runtime environment (`containerd --config DIR/…`, `dockerd --data-root
 * DIR/…`), to be given a cgroup of their own as their services have.
 */
export function daemonsOf(dir: string, names: readonly string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let args: string[];
    try {
      args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (names.includes(basename(args[0] ?? '')) && args.some((arg) => arg.includes(dir))) pids.push(Number(entry));
  }
  return pids;
}
