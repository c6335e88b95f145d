import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { RuntimeError } from '../errors.js';

/** Where the runc v2 shim keeps runc's state when its options name no root (containerd's default). */
export const DEFAULT_RUNC_ROOT = '/run/containerd/runc';

/**
 * True when creating a task failed because runc still holds state under the container's id: a
 * task create that was cut short (the agent killed while containerd's shim ran `runc create`)
 * leaves runc's state behind without a task containerd knows of, and every later create fails.
 */
export function isStaleRuncState(error: unknown): boolean {
  return error instanceof RuntimeError && /container with given ID already exists/.test(error.detail);
}

/**
 * True when creating a task failed because another create of the same task is still in
 * containerd's hands (one of an agent process that died mid-create goes on there, and removes the
 * bundle only when it fails): this one finds the task's bundle directory taken ("mkdir <bundle>:
 * file exists"), or the other one's clean-up removes the bundle under it ("symlink <work>
 * <bundle>/work: no such file or directory").
 */
export function isBundleInUse(error: unknown, namespace: string, id: string): boolean {
  if (!(error instanceof RuntimeError)) return false;
  const bundle = /mkdir (\S+): file exists/.exec(error.detail)?.[1] ?? /symlink \S+ (\S+)\/work: no such file or directory/.exec(error.detail)?.[1];
  return bundle !== undefined && bundle.endsWith(`/io.containerd.runtime.v2.task/${namespace}/${id}`);
}

/**
 * Removes runc's leftover state of one container (`runc delete --force`, which also kills a
 * process the cut-short create left waiting). Called only for a container of berth's namespace
 * for which containerd has no task.
 */
export function removeStaleRuncState(runcRoot: string, namespace: string, id: string, timeoutMs: number): Promise<void> {
  const operation = `remove the stale runc state of ${id}`;
  return new Promise((resolve, reject) => {
    execFile('runc', ['--root', join(runcRoot, namespace), 'delete', '--force', id], { timeout: timeoutMs, maxBuffer: 64 * 1024 }, (error, _stdout, stderr) => {
      if (error && !/does not exist|not found/.test(stderr)) reject(new RuntimeError('internal', operation, stderr.trim() || error.message));
      else resolve();
    });
  });
}
