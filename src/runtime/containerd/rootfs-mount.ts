import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Mount } from '../../gen/containerd/types/types.js';

const run = promisify(execFile);

/**
 * Mounts a snapshot (its mounts as containerd gives them) on a temporary directory for the time
 * `use` takes, as the agent (which runs as root), then unmounts it. What is read there comes from
 * an image and is not trusted: see rootfs-file.ts.
 */
export async function withMountedSnapshot<T>(mounts: Mount[], use: (root: string) => Promise<T>): Promise<T> {
  const target = await mkdtemp(join(tmpdir(), 'berth-rootfs-'));
  const mounted: string[] = [];
  try {
    for (const m of mounts) {
      const options = m.options.filter((o) => o !== 'rbind' || m.type === 'bind');
      const args = m.type === 'bind' ? ['--bind', m.source, target] : ['-t', m.type, m.source, target];
      if (options.length > 0) args.push('-o', options.join(','));
      await run('mount', args);
      mounted.push(target);
    }
    return await use(target);
  } finally {
    for (const path of mounted.reverse()) await run('umount', [path]).catch(() => undefined);
    await rm(target, { recursive: true, force: true });
  }
}
