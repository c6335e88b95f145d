import { createHash, randomBytes } from 'node:crypto';
import { RuntimeError, isRuntimeError } from '../errors.js';
import type { ImageName } from '../oci/image-name.js';
import { isIndex, type OciDescriptor, type OciImageConfig, type OciIndex, type OciManifest } from '../oci/media-types.js';
import type { RegistryClient } from '../oci/registry-client.js';
import type { PullProgress, RegistryAuth } from '../types.js';
import type { ContainerdClient } from './containerd-client.js';
import { labelBlob, writeBlob } from './content-store.js';
import { leaseLabels } from './lease-owner.js';

export const SNAPSHOTTER = 'overlayfs';
/** Tries of a blob write another process holds the lock of (about 10 minutes with the back-off). */
const LOCKED_WRITE_ATTEMPTS = 300;

/** containerd's answer to a write of a blob another writer is writing (the ref is locked). */
function isLockedByAnotherWriter(error: unknown): boolean {
  return isRuntimeError(error, 'unavailable') && /\blocked\b/.test((error as RuntimeError).detail);
}

/** The platform images are pulled for. */
export function hostPlatform(): { os: string; architecture: string } {
  const architecture = process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : process.arch;
  return { os: 'linux', architecture };
}

/** The manifest of an index (or manifest list) for the host's platform. */
export function hostPlatformManifest(index: OciIndex, operation: string): OciDescriptor {
  const platform = hostPlatform();
  const chosen = index.manifests.find((m) => m.platform?.os === platform.os && m.platform.architecture === platform.architecture);
  if (!chosen) throw new RuntimeError('not-found', operation, `no manifest for ${platform.os}/${platform.architecture}`);
  return chosen;
}

/** chainID[0] = diffID[0]; chainID[i] = sha256(chainID[i-1] + " " + diffID[i]). */
export function chainIds(diffIds: string[]): string[] {
  const chain: string[] = [];
  for (const diffId of diffIds) {
    const previous = chain.at(-1);
    chain.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return chain;
}

export interface PulledImage {
  target: OciDescriptor;
  manifest: OciManifest;
  config: OciImageConfig;
  /** Chain id of the top layer: the parent snapshot of every container of the image. */
  topChainId: string;
}

/**
 * Pulls an image the way containerd's own Go client does (containerd 1.6 has no server-side pull):
 * resolve the tag, walk index → manifest → config and layers, write each blob into the content
 * store (skipping what is there), unpack the layers into overlayfs snapshots by chain id (skipping
 * those that exist), and name the image. Everything happens under a lease, so containerd's garbage
 * collector cannot take half a pull; GC labels on the parents keep the children afterwards.
 */
export class ImagePuller {
  /** Blob writes in flight, by digest: a pull that needs a blob another pull is writing waits for it. */
  private readonly blobWrites = new Map<string, Promise<void>>();

  constructor(
    private readonly client: ContainerdClient,
    private readonly registry: RegistryClient,
    private readonly callTimeoutMs: number,
  ) {}

  async pull(name: ImageName, auth: RegistryAuth | undefined, onProgress: ((progress: PullProgress) => void) | undefined, signal: AbortSignal): Promise<PulledImage> {
    const lease = `berth-pull-${Date.now()}-${randomBytes(4).toString('hex')}`;
    await this.client.call('create lease', this.client.leases, this.client.leases.create, { id: lease, labels: leaseLabels(24 * 3600_000) });
    try {
      return await this.pullUnderLease(name, auth, lease, onProgress, signal);
    } finally {
      await this.client.call('delete lease', this.client.leases, this.client.leases.delete, { id: lease, sync: false }).catch(() => undefined);
    }
  }

  private async pullUnderLease(name: ImageName, auth: RegistryAuth | undefined, lease: string, onProgress: ((progress: PullProgress) => void) | undefined, signal: AbortSignal): Promise<PulledImage> {
    const target = await this.registry.resolve(name, auth, signal);
    let manifestDescriptor = target;
    let index: { body: Buffer; parsed: OciIndex } | undefined;
    if (isIndex(target.mediaType)) {
      const body = await this.registry.fetchManifest(name, target, auth, signal);
      index = { body, parsed: JSON.parse(body.toString('utf8')) as OciIndex };
      manifestDescriptor = hostPlatformManifest(index.parsed, `pull image "${name.reference}"`);
    }
    const manifestBody = await this.registry.fetchManifest(name, manifestDescriptor, auth, signal);
    const manifest = JSON.parse(manifestBody.toString('utf8')) as OciManifest;
    if (!manifest.config || !Array.isArray(manifest.layers)) throw new RuntimeError('invalid', `pull image "${name.reference}"`, `${manifestDescriptor.mediaType} is not an image manifest`);

    // Blobs: layers and config first, then the manifest and index that refer to them.
    const progress: PullProgress = { bytesDone: 0, bytesTotal: manifest.layers.reduce((sum, l) => sum + l.size, 0) + manifest.config.size };
    const report = (bytes: number) => {
      progress.bytesDone += bytes;
      onProgress?.({ ...progress });
    };
    const fromRegistry = (descriptor: OciDescriptor) => (offset: number) => this.registry.fetchBlob(name, descriptor, auth, offset, signal);
    const fromMemory = (body: Buffer) => async () => [new Uint8Array(body)];
    for (const layer of manifest.layers) await this.writeShared(lease, layer, {}, fromRegistry(layer), report, signal);
    const configBody = await this.registry.fetchSmallBlob(name, manifest.config, auth, signal);
    await this.writeShared(lease, manifest.config, {}, fromMemory(configBody), report, signal);
    const manifestLabels: Record<string, string> = { 'containerd.io/gc.ref.content.config': manifest.config.digest };
    manifest.layers.forEach((layer, i) => (manifestLabels[`containerd.io/gc.ref.content.l.${i}`] = layer.digest));
    await this.writeShared(lease, manifestDescriptor, manifestLabels, fromMemory(manifestBody), () => undefined, signal);
    if (index) {
      const indexLabels = Object.fromEntries(index.parsed.manifests.map((m, i) => [`containerd.io/gc.ref.content.m.${i}`, m.digest]));
      await this.writeShared(lease, target, indexLabels, fromMemory(index.body), () => undefined, signal);
    }

    const config = JSON.parse(configBody.toString('utf8')) as OciImageConfig;
    const topChainId = await this.unpack(manifest, config, lease);
    await labelBlob(this.client, manifest.config.digest, { [`containerd.io/gc.ref.snapshot.${SNAPSHOTTER}`]: topChainId }, lease);
    await this.nameImage(name.reference, target, lease);
    return { target, manifest, config, topChainId };
  }

  /**
   * Writes a blob, unless it is there, once however many pulls of this agent need it (images share
   * layers; two pulls of one image with different credentials share everything). containerd locks
   * a blob while it is written: a write locked by another process is tried again until it is there
   * or the pull is abandoned.
   */
  private async writeShared(
    lease: string,
    descriptor: OciDescriptor,
    labels: Record<string, string>,
    open: Parameters<typeof writeBlob>[4],
    onBytes: (bytes: number) => void,
    signal: AbortSignal,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      for (let running = this.blobWrites.get(descriptor.digest); running; running = this.blobWrites.get(descriptor.digest)) {
        await running.catch(() => undefined);
      }
      // Once the other write is done, this one finds the blob (and adds it to this pull's lease).
      const write = writeBlob(this.client, lease, descriptor, labels, open, onBytes, signal);
      this.blobWrites.set(descriptor.digest, write);
      try {
        return await write;
      } catch (error) {
        if (!isLockedByAnotherWriter(error) || attempt >= LOCKED_WRITE_ATTEMPTS || signal?.aborted) throw error;
      } finally {
        if (this.blobWrites.get(descriptor.digest) === write) this.blobWrites.delete(descriptor.digest);
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(2000, 100 * attempt)));
    }
  }

  /** Applies the layers as snapshots named by chain id; returns the top chain id. */
  private async unpack(manifest: OciManifest, config: OciImageConfig, lease: string): Promise<string> {
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (diffIds.length !== manifest.layers.length) throw new RuntimeError('invalid', 'unpack', `${manifest.layers.length} layers but ${diffIds.length} diff ids`);
    const chain = chainIds(diffIds);
    const c = this.client;
    for (let i = 0; i < chain.length; i++) {
      const chainId = chain[i]!;
      const exists = await c.call('stat snapshot', c.snapshots, c.snapshots.stat, { snapshotter: SNAPSHOTTER, key: chainId }, { lease }).then(
        () => true,
        (error: unknown) => (isRuntimeError(error, 'not-found') ? false : Promise.reject(error)),
      );
      if (exists) continue;
      const key = `extract-${process.hrtime.bigint()}-${randomBytes(4).toString('hex')} ${chainId}`;
      const prepared = await c.call('prepare snapshot', c.snapshots, c.snapshots.prepare, { snapshotter: SNAPSHOTTER, key, parent: chain[i - 1] ?? '', labels: {} }, { lease });
      const layer = manifest.layers[i]!;
      try {
        const applied = await c.call(
          'apply layer',
          c.diff,
          c.diff.apply,
          {
            diff: { mediaType: layer.mediaType, digest: layer.digest, size: layer.size, annotations: {} },
            mounts: prepared.mounts,
          },
          { lease, timeoutMs: 10 * this.callTimeoutMs },
        );
        if (applied.applied?.digest !== diffIds[i]) throw new RuntimeError('internal', 'apply layer', `layer ${layer.digest} unpacked to ${applied.applied?.digest}, expected ${diffIds[i]}`);
        await c.call('commit snapshot', c.snapshots, c.snapshots.commit, { snapshotter: SNAPSHOTTER, name: chainId, key, labels: {} }, { lease });
      } catch (error) {
        await c.call('remove snapshot', c.snapshots, c.snapshots.remove, { snapshotter: SNAPSHOTTER, key }).catch(() => undefined);
        if (isRuntimeError(error, 'already-exists')) continue; // unpacked meanwhile by another pull
        throw error;
      }
      await labelBlob(c, layer.digest, { 'containerd.io/uncompressed': diffIds[i]! }, lease);
    }
    return chain.at(-1)!;
  }

  private async nameImage(reference: string, target: OciDescriptor, lease: string): Promise<void> {
    const image = { name: reference, labels: {}, target: { mediaType: target.mediaType, digest: target.digest, size: target.size, annotations: {} }, createdAt: undefined, updatedAt: undefined };
    const c = this.client;
    try {
      await c.call('create image', c.images, c.images.create, { image }, { lease });
    } catch (error) {
      if (!isRuntimeError(error, 'already-exists')) throw error;
      await c.call('update image', c.images, c.images.update, { image, updateMask: ['target'] }, { lease });
    }
  }
}
