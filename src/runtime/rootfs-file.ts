import { constants } from 'node:fs';
import { lstat, open, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';

/** Symbolic links followed while resolving one path, at most (as the kernel's 40). */
const MAX_LINKS = 40;

/** Why a file of an image cannot be read safely; its message is a container's reason. */
export class RootfsFileError extends Error {
  override readonly name = 'RootfsFileError';
}

/**
 * Resolves `path` inside the directory `root` as the container would see it: symbolic links
 * (absolute ones from the root, relative ones from their directory) and ".." never leave `root`.
 * Returns the host path, or undefined when a component does not exist.
 */
export async function resolveInside(root: string, path: string): Promise<string | undefined> {
  let pending = posix.normalize(`/${path}`).split('/').filter(Boolean);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length > 0) {
    const part = pending.shift() as string;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const host = join(root, ...resolved, part);
    const info = await lstat(host).catch(() => undefined);
    if (!info) return undefined;
    if (info.isSymbolicLink()) {
      if (++links > MAX_LINKS) throw new RootfsFileError(`/${path}: too many symbolic links`);
      const target = await readlink(host);
      if (target.startsWith('/')) resolved.length = 0;
      pending = [...target.split('/').filter(Boolean), ...pending];
      continue;
    }
    resolved.push(part);
  }
  return join(root, ...resolved);
}

/**
 * Reads a file of an image's root filesystem (mounted at `root`) without trusting the image:
 * links resolve inside the root only, the file must be a regular file (not a device, FIFO or
 * socket), and at most `maxBytes` are read. Undefined when the file does not exist; a
 * RootfsFileError saying what is wrong otherwise.
 */
export async function readRootfsFile(root: string, path: string, maxBytes: number): Promise<string | undefined> {
  const host = await resolveInside(root, path);
  if (host === undefined) return undefined;
  // O_NOFOLLOW: the last component was resolved above and is not a link; O_NONBLOCK: a FIFO put
  // there meanwhile cannot hang the open.
  const file = await open(host, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw new RootfsFileError(`/${path}: cannot be opened (${error.code ?? error.message})`);
  });
  if (!file) return undefined;
  try {
    const info = await file.stat();
    if (!info.isFile()) throw new RootfsFileError(`/${path} is not a regular file`);
    if (info.size > maxBytes) throw new RootfsFileError(`/${path} is larger than ${maxBytes} bytes`);
    const buffer = Buffer.alloc(maxBytes + 1);
    const { bytesRead } = await file.read(buffer, 0, maxBytes + 1, 0);
    if (bytesRead > maxBytes) throw new RootfsFileError(`/${path} is larger than ${maxBytes} bytes`);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } finally {
    await file.close();
  }
}
