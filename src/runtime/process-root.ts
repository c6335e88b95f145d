import { stat } from 'node:fs/promises';
import { RuntimeError } from './errors.js';
import { readRootfsFile, resolveInside, RootfsFileError } from './rootfs-file.js';
import { resolveUser, type NumericUser } from './user-database.js';

/** /etc/passwd and /etc/group are read up to this size. */
const MAX_ACCOUNT_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Checks what a new process in a running container asks for against the container's own files,
 * read through its main process's root (/proc/PID/root, as the agent is root on the host) without
 * trusting them: the user (and group) must exist in its /etc/passwd (and /etc/group), the working
 * directory must be a directory. Both runtimes check alike, so that a bad one gets the same
 * "invalid" error on each rather than a process that fails to start. Returns the user as numbers.
 */
export async function checkProcessIdentity(pid: number, operation: string, user: string | undefined, workingDir: string | undefined): Promise<NumericUser | undefined> {
  const root = `/proc/${pid}/root`;
  const read = async (path: string) =>
    readRootfsFile(root, path, MAX_ACCOUNT_FILE_BYTES).catch((error: unknown) => {
      if (error instanceof RootfsFileError) throw new RuntimeError('invalid', operation, `the container's ${error.message}`);
      throw error;
    });
  if (workingDir) {
    if (!workingDir.startsWith('/')) throw new RuntimeError('invalid', operation, `working directory "${workingDir}" is not absolute`);
    const host = await resolveInside(root, workingDir).catch(() => undefined);
    const info = host === undefined ? undefined : await stat(host).catch(() => undefined);
    if (!info?.isDirectory()) throw new RuntimeError('invalid', operation, `working directory "${workingDir}" is not a directory in the container`);
  }
  if (!user) return undefined;
  return resolveUser(user, async () => ({ passwd: await read('etc/passwd'), group: await read('etc/group') }));
}
