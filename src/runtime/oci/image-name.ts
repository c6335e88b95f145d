import { registryHost, withDefaultTag } from '../image-reference.js';

/** An image reference split into what the distribution API needs. */
export interface ImageName {
  /** The full reference, with a tag or digest, as images are named in the runtime. */
  reference: string;
  /** Registry host as written ("docker.io" for Docker Hub). */
  registry: string;
  /** Host to connect to (Docker Hub's API lives at registry-1.docker.io). */
  endpoint: string;
  /** Repository path, with "library/" for official Docker Hub images. */
  repository: string;
  /** Tag or digest to resolve. */
  tagOrDigest: string;
}

export function parseImageName(input: string): ImageName {
  const reference = withDefaultTag(input);
  const registry = registryHost(reference);
  let rest = reference.startsWith(`${registry}/`) ? reference.slice(registry.length + 1) : reference;
  let tagOrDigest: string;
  const at = rest.indexOf('@');
  if (at >= 0) {
    tagOrDigest = rest.slice(at + 1);
    rest = rest.slice(0, at);
  } else {
    const colon = rest.lastIndexOf(':');
    tagOrDigest = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const dockerHub = registry === 'docker.io';
  const repository = dockerHub && !rest.includes('/') ? `library/${rest}` : rest;
  return {
    reference: dockerHub && !reference.startsWith('docker.io/') ? `docker.io/${repository}${at >= 0 ? '@' : ':'}${tagOrDigest}` : reference,
    registry,
    endpoint: dockerHub ? 'registry-1.docker.io' : registry,
    repository,
    tagOrDigest,
  };
}
