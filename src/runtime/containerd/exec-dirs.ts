import { randomBytes } from 'node:crypto';
import type { Stats } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants as os } from 'node:os';
import { join } from 'node:path';
import { killProcessTree, startedBeforeThisProcess } from '../process-tree.js';
import type { ContainerdClient } from './containerd-client.js';

/**
 * Every process berth execs in a containerd container (a one-shot Exec, an interactive session)
 * has a directory of its own in the exec directory for its output files or FIFOs. The directory's
 * name is the process's exec id, and a file in it names the container, so that an agent that
 * finds it after a crash knows what to end.
 */

/** The file of an exec directory that names its container. */
const CONTAINER_FILE = 'container';
/** An exec directory: `<container id, 40 characters at most>-<exec|session>-<hex>`. */
const EXEC_DIR = /-(?:exec|session)-[0-9a-f]+$/;
/** The output file of a one-shot exec of agents before exec directories, made in the exec root itself. */
const OLD_EXEC_OUTPUT = /-exec-[0-9a-f]+\.log$/;

/**
 * A new exec directory's path (not made yet) for a process of `kind` in container `containerId`.
 * Its name is a valid containerd identifier (alphanumerics joined by single separators): the
 * container id's first 40 characters without the separators they may end with.
 */
export function newExecDir(execRoot: string, containerId: string, kind: 'exec' | 'session'): string {
  const prefix = containerId.slice(0, 40).replace(/[^A-Za-z0-9]+$/, '') || 'c';
  return join(execRoot, `${prefix}-${kind}-${randomBytes(6).toString('hex')}`);
}

/** The process's exec id: the directory's name. */
export function execIdOf(dir: string): string {
  return dir.slice(dir.lastIndexOf('/') + 1);
}

/** Makes the directory (only the agent reads it) and records its container in it. */
export async function prepareExecDir(dir: string, containerId: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await writeFile(join(dir, CONTAINER_FILE), containerId);
}

/**
 * Ends the exec processes an earlier agent left (it crashed): each directory in `execRoot` older
 * than this agent names its container and, as its name, its exec id; the process still running
 * there is killed with what it started, and the process and the directory go. Output files older
 * agents left in `execRoot` itself go too. Returns how many processes ran.
 */
export async function endLeftoverExecs(c: ContainerdClient, execRoot: string): Promise<number> {
  const agentStart = Date.now() - process.uptime() * 1000;
  const olderThanThisAgent = (info: Stats | undefined): info is Stats => info !== undefined && info.mtimeMs < agentStart;
  const names = await readdir(execRoot).catch(() => [] as string[]);
  // An older agent's output files of one-shot execs it did not finish: their processes ended with
  // it or are left to the container, but the files would stay forever. Only plain files go, and
  // one that cannot go does not stop the rest.
  for (const name of names.filter((n) => OLD_EXEC_OUTPUT.test(n))) {
    const file = join(execRoot, name);
    const info = await lstat(file).catch(() => undefined);
    if (olderThanThisAgent(info) && info.isFile()) await rm(file, { force: true }).catch(() => undefined);
  }
  let ended = 0;
  for (const name of names.filter((n) => EXEC_DIR.test(n))) {
    const dir = join(execRoot, name);
    if (!olderThanThisAgent(await stat(dir).catch(() => undefined))) continue;
    const execId = name;
    const containerId = (await readFile(join(dir, CONTAINER_FILE), 'utf8').catch(() => '')).slice(0, 1024);
    if (containerId) {
      const get = (id: string) =>
        c.call('get exec process', c.tasks, c.tasks.get, { containerId, execId: id }).then(
          (r) => r.process,
          () => undefined,
        );
      const [process, task] = await Promise.all([get(execId), get('')]);
      if (process?.pid && startedBeforeThisProcess(process.pid)) {
        if ((await killProcessTree(process.pid, task?.pid ?? 0)) > 0) ended++;
        await c.call('kill exec process', c.tasks, c.tasks.kill, { containerId, execId, signal: os.signals.SIGKILL, all: false }).catch(() => undefined);
      }
      if (process) await c.call('delete exec process', c.tasks, c.tasks.deleteProcess, { containerId, execId }).catch(() => undefined);
    }
    await rm(dir, { recursive: true, force: true });
  }
  return ended;
}
