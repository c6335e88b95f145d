/** Media types of the OCI image and Docker v2 formats that a pull walks through. */
export const MEDIA_TYPES = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
} as const;

export const MANIFEST_ACCEPT = [MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerManifestList, MEDIA_TYPES.ociManifest, MEDIA_TYPES.ociIndex].join(', ');

export const isIndex = (mediaType: string) => mediaType === MEDIA_TYPES.dockerManifestList || mediaType === MEDIA_TYPES.ociIndex;

/** An OCI content descriptor, as manifests write it. */
export interface OciDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface OciIndex {
  mediaType?: string;
  manifests: OciDescriptor[];
}

export interface OciManifest {
  mediaType?: string;
  config: OciDescriptor;
  layers: OciDescriptor[];
}

/** The parts of an image config that running a container needs. */
export interface OciImageConfig {
  architecture?: string;
  os?: string;
  config?: {
    Env?: string[];
    Entrypoint?: string[] | null;
    Cmd?: string[] | null;
    WorkingDir?: string;
    User?: string;
    StopSignal?: string;
    /** Paths the image declares as volumes (VOLUME), as the keys. */
    Volumes?: Record<string, object> | null;
  };
  rootfs: { type: string; diff_ids: string[] };
}
