import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { promisify } from 'node:util';
import type { Mount } from '../../gen/containerd/types/types.js';
import { isRuntimeError, RuntimeError } from '../errors.js';
import type { OciImageConfig } from '../oci/media-types.js';
import type { ContainerSpec, VolumeInfo, VolumeSpec } from '../types.js';
import type { VolumeBind } from './oci-spec.js';
import { withMountedSnapshot } from './rootfs-mount.js';
import { resolveInside } from '../rootfs-file.js';

const run = promisify(execFile);

/** Names that are safe as one directory name (and are Docker's volume names). */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const METADATA = 'volume.json';

/**
 * Volumes of the `local` driver on containerd, which has none of its own: a directory per volume
 * under `root` (`<name>/_data`, bind-mounted into containers), with its driver and labels beside it
 * in `volume.json`. Other drivers, and driver options, are refused: berth cannot honour them here.
 */
export class LocalVolumes {
  constructor(
    private readonly root: string,
    /** Whether a container mounts this data directory (a volume in use is not removed). */
    private readonly inUse: (dataDir: string) => Promise<boolean>,
  ) {}

  /** The directory a volume's containers see. */
  dataDir(name: string): string {
    return join(this.root, checkedName(name, 'use volume'), '_data');
  }

  async create(spec: VolumeSpec): Promise<void> {
    const operation = `create volume "${spec.name}"`;
    const dir = join(this.root, checkedName(spec.name, operation));
    if (spec.driver !== 'local') throw new RuntimeError('invalid', operation, `containerd offers only the "local" volume driver, not "${spec.driver}"`);
    const options = Object.keys(spec.driverOptions);
    if (options.length > 0) throw new RuntimeError('invalid', operation, `the local driver on containerd takes no driver options (got ${options.join(', ')})`);
    if (await exists(join(dir, METADATA))) return;
    await mkdir(join(dir, '_data'), { recursive: true });
    // Written last and whole: a volume without its metadata file is one whose creation was cut short.
    const temporary = join(dir, `${METADATA}.${randomBytes(6).toString('hex')}`);
    await writeFile(temporary, JSON.stringify({ driver: spec.driver, labels: spec.labels }));
    await rename(temporary, join(dir, METADATA));
  }

  async inspect(name: string): Promise<VolumeInfo> {
    const operation = `inspect volume "${name}"`;
    const text = await readFile(join(this.root, checkedName(name, operation), METADATA), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') throw new RuntimeError('not-found', operation, `no volume "${name}"`);
      throw error;
    });
    const metadata = JSON.parse(text) as { driver: string; labels: Record<string, string> };
    return { name, driver: metadata.driver, labels: metadata.labels };
  }

  async remove(name: string): Promise<void> {
    const operation = `remove volume "${name}"`;
    const dir = join(this.root, checkedName(name, operation));
    if (!(await exists(dir))) return;
    if (await this.inUse(join(dir, '_data'))) throw new RuntimeError('conflict', operation, 'a container uses it');
    await rm(dir, { recursive: true, force: true });
  }

  async list(labels: Record<string, string>): Promise<VolumeInfo[]> {
    const names = await readdir(this.root).catch(() => [] as string[]);
    const volumes = await Promise.all(names.filter((n) => VOLUME_NAME.test(n)).map((n) => this.inspect(n).catch(() => undefined)));
    return volumes.filter((v): v is VolumeInfo => v !== undefined && Object.entries(labels).every(([key, value]) => v.labels[key] === value));
  }
}

/**
 * The volume mounts of a container, as host directories: the spec's volumes, and an anonymous
 * volume (under the container's own directory, removed with it) for each path the image
 * declares a VOLUME that nothing else is mounted at. Each that is empty first gets a copy of
 * the image's files at its path, as Docker does.
 */
export async function containerVolumeBinds(volumes: LocalVolumes, spec: ContainerSpec, image: OciImageConfig, mounts: Mount[], dir: string, operation: string): Promise<VolumeBind[]> {
  const binds: (VolumeBind & { data: string })[] = [];
  for (const m of spec.volumeMounts ?? []) {
    await volumes.inspect(m.volume).catch((error: unknown) => {
      if (isRuntimeError(error, 'not-found')) throw new RuntimeError('not-found', operation, `volume "${m.volume}" does not exist`);
      throw error;
    });
    const data = volumes.dataDir(m.volume);
    binds.push({ containerPath: m.containerPath, source: data, readOnly: m.readOnly, data });
  }
  const taken = new Set([...(spec.mounts ?? []), ...(spec.volumeMounts ?? []), ...(spec.tmpfs ?? [])].map((m) => posix.normalize(m.containerPath)));
  for (const path of Object.keys(image.config?.Volumes ?? {})) {
    const containerPath = posix.normalize(`/${path}`);
    if (containerPath === '/' || taken.has(containerPath)) continue;
    taken.add(containerPath);
    const data = join(dir, 'volumes', createHash('sha256').update(containerPath).digest('hex').slice(0, 32));
    await mkdir(data, { recursive: true });
    binds.push({ containerPath, source: data, readOnly: false, data });
  }
  const empty = await Promise.all(binds.map(async (b) => (await readdir(b.data)).length === 0));
  if (empty.some(Boolean)) {
    await withMountedSnapshot(mounts, async (root) => {
      for (const [i, b] of binds.entries()) if (empty[i]) await copyImageContent(root, b.containerPath, b.data);
    });
  }
  return binds.map(({ containerPath, source, readOnly }) => ({ containerPath, source, readOnly }));
}

/**
 * Docker's rule for a volume mounted where the image has files: while the volume is empty, the
 * image's directory at `path` (resolved inside `rootfs`, links never leaving it) is copied in,
 * with its owners, modes and links as they are. Nothing is copied when the image has no directory
 * there.
 */
export async function copyImageContent(rootfs: string, path: string, volumeData: string): Promise<void> {
  if ((await readdir(volumeData)).length > 0) return;
  const source = await resolveInside(rootfs, path);
  if (!source || !(await lstat(source)).isDirectory()) return;
  // -a: links copied as links (never followed out of the image), owners and modes kept.
  await run('cp', ['-a', '--', `${source}/.`, volumeData]);
}

function checkedName(name: string, operation: string): string {
  if (!VOLUME_NAME.test(name)) throw new RuntimeError('invalid', operation, `"${name}" is not a volume name ([A-Za-z0-9][A-Za-z0-9_.-]*)`);
  return name;
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}
