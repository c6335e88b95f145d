import type { Mount } from '../../gen/containerd/types/types.js';
import { RuntimeError } from '../errors.js';
import type { OciUser } from './oci-spec.js';
import { readRootfsFile, RootfsFileError } from './rootfs-file.js';
import { withMountedSnapshot } from './rootfs-mount.js';

/** /etc/passwd and /etc/group are read up to this size. */
const MAX_ACCOUNT_FILE_BYTES = 4 * 1024 * 1024;

/**
 * Reads files of a snapshot by mounting it for a moment (as the agent, which runs as root). The
 * image is not trusted: see readRootfsFile.
 */
export async function readFromMounts(mounts: Mount[], paths: string[]): Promise<(string | undefined)[]> {
  return withMountedSnapshot(mounts, (root) =>
    Promise.all(
      paths.map((path) =>
        readRootfsFile(root, path, MAX_ACCOUNT_FILE_BYTES).catch((error: unknown) => {
          if (error instanceof RootfsFileError) throw new RuntimeError('invalid', "read the image's user database", `the image's ${error.message}`);
          throw error;
        }),
      ),
    ),
  );
}

/** The uid and gid of a user entry of /etc/passwd, by name or number. */
function lookup(file: string | undefined, key: string, idField: number): { id: number; gid?: number } | undefined {
  for (const line of (file ?? '').split('\n')) {
    const fields = line.split(':');
    if (fields.length < 4) continue;
    if (fields[0] === key || fields[idField] === key) return { id: Number(fields[idField]), gid: idField === 2 ? Number(fields[3]) : undefined };
  }
  return undefined;
}

/**
 * Resolves "user", "user:group", "uid" or "uid:gid" (the image's User or the definition's user)
 * into numbers. Numbers go straight in; names are looked up in the image's /etc/passwd and
 * /etc/group, read through `read` only when needed.
 */
export async function resolveUser(user: string | undefined, read: () => Promise<{ passwd?: string; group?: string }>): Promise<OciUser> {
  if (!user) return { uid: 0, gid: 0 };
  const [name, group] = user.split(':') as [string, string | undefined];
  const numeric = (s: string) => /^\d+$/.test(s);
  if (numeric(name) && (group === undefined || numeric(group))) return { uid: Number(name), gid: group === undefined ? 0 : Number(group) };
  const files = await read();
  const entry = lookup(files.passwd, name, 2);
  if (!entry && !numeric(name)) throw new RuntimeError('invalid', `resolve user "${user}"`, `no user "${name}" in the image's /etc/passwd`);
  const uid = entry?.id ?? Number(name);
  let gid = entry?.gid ?? 0;
  if (group !== undefined) {
    const g = numeric(group) ? { id: Number(group) } : lookup(files.group, group, 2);
    if (!g) throw new RuntimeError('invalid', `resolve user "${user}"`, `no group "${group}" in the image's /etc/group`);
    gid = g.id;
  }
  return { uid, gid };
}
