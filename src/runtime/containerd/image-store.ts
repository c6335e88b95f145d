import { RuntimeError } from '../errors.js';
import type { ImageName } from '../oci/image-name.js';
import { isIndex, type OciDescriptor, type OciImageConfig, type OciIndex, type OciManifest } from '../oci/media-types.js';
import type { ContainerdClient } from './containerd-client.js';
import { readBlob } from './content-store.js';
import { chainIds, hostPlatformManifest } from './image-puller.js';

/** What a container needs of an image that is present in containerd. */
export interface LocalImage {
  name: string;
  /** The config's digest: the image id, as Docker reports it too. */
  id: string;
  config: OciImageConfig;
  topChainId: string;
  sizeBytes: number;
}

/**
 * Reads images that are present in containerd (named in its image store, blobs in its content
 * store): target → platform manifest → config. Results are cached by target digest.
 */
export class ImageStore {
  private readonly cache = new Map<string, Omit<LocalImage, 'name'>>();

  constructor(
    private readonly client: ContainerdClient,
    private readonly timeoutMs: number,
  ) {}

  async get(name: ImageName): Promise<LocalImage> {
    const c = this.client;
    const { image } = await c.call(`inspect image "${name.reference}"`, c.images, c.images.get, { name: name.reference });
    const target = image?.target;
    if (!target) throw new RuntimeError('not-found', `inspect image "${name.reference}"`, 'the image has no target');
    let cached = this.cache.get(target.digest);
    if (!cached) {
      cached = await this.read({ mediaType: target.mediaType, digest: target.digest, size: target.size });
      this.cache.set(target.digest, cached);
    }
    return { name: name.reference, ...cached };
  }

  private async read(target: OciDescriptor): Promise<Omit<LocalImage, 'name'>> {
    let manifestDigest = target.digest;
    if (isIndex(target.mediaType)) {
      const index = JSON.parse((await readBlob(this.client, target.digest, this.timeoutMs)).toString('utf8')) as OciIndex;
      manifestDigest = hostPlatformManifest(index, 'read image').digest;
    }
    const manifest = JSON.parse((await readBlob(this.client, manifestDigest, this.timeoutMs)).toString('utf8')) as OciManifest;
    const config = JSON.parse((await readBlob(this.client, manifest.config.digest, this.timeoutMs)).toString('utf8')) as OciImageConfig;
    const chain = chainIds(config.rootfs?.diff_ids ?? []);
    if (chain.length === 0) throw new RuntimeError('invalid', 'read image', 'the image has no layers');
    return { id: manifest.config.digest, config, topChainId: chain.at(-1)!, sizeBytes: manifest.layers.reduce((sum, l) => sum + l.size, 0) };
  }
}
