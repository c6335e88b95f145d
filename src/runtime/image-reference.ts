/**
 * Image references by the distribution reference grammar (the one Docker and containerd both
 * implement): `[host[:port]/]path[:tag][@digest]`. Parsed once, so every runtime accepts and refuses
 * the same strings, and normalised (Docker Hub's host and `library/`, the `latest` tag) once.
 */

import { RuntimeError } from './errors.js';

/** A reference split into its parts; `host` is "docker.io" when the reference names none. */
export interface ImageReference {
  host: string;
  /** The repository path inside the registry, e.g. "library/busybox". */
  path: string;
  tag?: string;
  digest?: string;
}

/** The longest name (host and path) the grammar allows. */
const MAX_NAME_LENGTH = 255;
const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const HOST = new RegExp(`^(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[0-9A-Fa-f:.]+\\])(?::[0-9]{1,5})?$`);
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^\w[\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
/** Digests berth can verify: the algorithm and its hex length. */
const KNOWN_DIGESTS: Record<string, number> = { sha256: 64, sha384: 96, sha512: 128 };

/** Why a string is not an image reference. */
export class ImageReferenceError extends Error {
  override readonly name = 'ImageReferenceError';
}

/** Parses a reference; throws ImageReferenceError saying what is wrong with it. */
export function parseImageReference(input: string): ImageReference {
  if (input.length === 0) throw new ImageReferenceError('must not be empty');
  if (input.length > MAX_NAME_LENGTH + 129 + 140) throw new ImageReferenceError('is too long to be an image reference');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw new ImageReferenceError(`"${digest}" is not a digest (algorithm:hex)`);
    const [algorithm, hex] = digest.split(':') as [string, string];
    const length = KNOWN_DIGESTS[algorithm];
    if (length === undefined) throw new ImageReferenceError(`digest algorithm "${algorithm}" is not supported (sha256, sha384 or sha512)`);
    if (hex.length !== length) throw new ImageReferenceError(`a ${algorithm} digest has ${length} hex digits (got ${hex.length})`);
    if (hex !== hex.toLowerCase()) throw new ImageReferenceError('digest hex digits must be lower case');
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(':');
  if (lastColon > rest.lastIndexOf('/')) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!TAG.test(tag)) throw new ImageReferenceError(`"${tag}" is not a tag (letters, digits, _ . -, at most 128, not starting with . or -)`);
  }
  if (rest.length > MAX_NAME_LENGTH) throw new ImageReferenceError(`the name is longer than ${MAX_NAME_LENGTH} characters`);
  const parts = rest.split('/');
  let host = 'docker.io';
  const first = parts[0]!;
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first !== first.toLowerCase())) {
    if (!HOST.test(first)) throw new ImageReferenceError(`"${first}" is not a registry host[:port]`);
    const port = /:(\d+)$/.exec(first)?.[1];
    if (port !== undefined && Number(port) > 65535) throw new ImageReferenceError(`port ${port} is out of range`);
    host = first === 'index.docker.io' ? 'docker.io' : first;
    parts.shift();
  }
  parts.forEach((component) => {
    if (component === '') throw new ImageReferenceError('has an empty path component ("//", or a leading or trailing "/")');
    if (!PATH_COMPONENT.test(component)) {
      throw new ImageReferenceError(`"${component}" is not a repository path component (lower-case letters and digits, separated by . _ __ or -)`);
    }
  });
  if (host === 'docker.io' && parts.length === 1) parts.unshift('library');
  return { host, path: parts.join('/'), tag, digest };
}

/**
 * The canonical form of a reference: host always present, Docker Hub's official images under
 * `library/`, the `latest` tag when neither tag nor digest is given. Throws ImageReferenceError.
 */
export function normalizeImageReference(input: string): string {
  const ref = parseImageReference(input);
  const name = `${ref.host}/${ref.path}`;
  if (ref.digest) return ref.tag ? `${name}:${ref.tag}@${ref.digest}` : `${name}@${ref.digest}`;
  return `${name}:${ref.tag ?? 'latest'}`;
}

/** The registry host of an image reference, as Docker resolves it ("docker.io" when none). */
export function registryHost(reference: string): string {
  const slash = reference.indexOf('/');
  if (slash < 0) return 'docker.io';
  const first = reference.slice(0, slash);
  if (first.includes('.') || first.includes(':') || first === 'localhost') return first;
  return 'docker.io';
}

/** Adds the ":latest" tag when a reference has neither tag nor digest. */
export function withDefaultTag(reference: string): string {
  if (reference.includes('@')) return reference;
  const lastSlash = reference.lastIndexOf('/');
  const lastColon = reference.lastIndexOf(':');
  return lastColon > lastSlash ? reference : `${reference}:latest`;
}

/**
 * Checks a reference before an adapter hands it to its daemon, which may answer a malformed one
 * in surprising ways (dockerd redirects a path with "//"). Fails with "invalid".
 */
export function requireImageReference(input: string, operation: string): void {
  try {
    parseImageReference(input);
  } catch (error) {
    if (!(error instanceof ImageReferenceError)) throw error;
    throw new RuntimeError('invalid', operation, `${JSON.stringify(input.slice(0, 300))} is not a valid image reference (${error.message})`);
  }
}
