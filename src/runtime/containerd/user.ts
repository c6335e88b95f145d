import type { Mount } from '../../gen/containerd/types/types.js';
import { RuntimeError } from '../errors.js';
import { readRootfsFile, RootfsFileError } from '../rootfs-file.js';
export { resolveUser } from '../user-database.js';
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
