import { readdir, readFile, readlink } from 'node:fs/promises';
import { liveProcessStartTime, statFieldsAfterCommand } from './proc-stat.js';

/** /proc is read for at most this many processes (a host has far fewer). */
const MAX_PROCESSES = 100_000;

async function parentOf(pid: number): Promise<number | undefined> {
  try {
    const parent = statFieldsAfterCommand(await readFile(`/proc/${pid}/stat`, 'utf8'))?.[1];
    return parent === undefined ? undefined : Number(parent);
  } catch {
    return undefined;
  }
}

/** The pid namespace of a process, or undefined when it is gone (or not on this host). */
async function pidNamespace(pid: number): Promise<string | undefined> {
  return readlink(`/proc/${pid}/ns/pid`).catch(() => undefined);
}

/** `root` and every process below it, parents before children. */
async function processTree(root: number): Promise<number[]> {
  const children = new Map<number, number[]>();
  const entries = (await readdir('/proc')).filter((e) => /^\d+$/.test(e)).slice(0, MAX_PROCESSES);
  for (const entry of entries) {
    const pid = Number(entry);
    const parent = await parentOf(pid);
    if (parent === undefined) continue;
    const list = children.get(parent) ?? [];
    list.push(pid);
    children.set(parent, list);
  }
  const tree: number[] = [];
  const queue = [root];
  while (queue.length > 0 && tree.length < MAX_PROCESSES) {
    const pid = queue.shift() as number;
    tree.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return tree;
}

/**
 * SIGKILLs a process a container runs (an exec or a health check that overran or was cancelled)
 * and everything it started, so that nothing it began keeps running in the container. Only
 * processes in the same pid namespace as `containerPid` (the container's first process) are
 * touched: a pid the runtime reported from another host or namespace is left alone. Two passes,
 * for children forked while the first was under way. Returns how many processes were killed.
 */
export async function killProcessTree(pid: number, containerPid: number): Promise<number> {
  if (!Number.isInteger(pid) || pid <= 1 || !Number.isInteger(containerPid) || containerPid <= 1) return 0;
  const namespace = await pidNamespace(containerPid);
  if (namespace === undefined) return 0;
  let killed = 0;
  for (let pass = 0; pass < 2; pass++) {
    for (const member of await processTree(pid)) {
      if ((await pidNamespace(member)) !== namespace) continue;
      try {
        process.kill(member, 'SIGKILL');
        killed++;
      } catch {
        // Already gone.
      }
    }
  }
  return killed;
}

/** Whether a process started before this one (the agent) did: one an earlier agent started. */
export function startedBeforeThisProcess(pid: number): boolean {
  const [theirs, ours] = [liveProcessStartTime(pid), liveProcessStartTime('self')];
  return theirs !== undefined && ours !== undefined && Number(theirs) < Number(ours);
}
