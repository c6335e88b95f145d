import { createHash } from 'node:crypto';
import { RuntimeError } from '../errors.js';
import type { RegistryAuth } from '../types.js';
import type { ImageName } from './image-name.js';
import { MANIFEST_ACCEPT, type OciDescriptor } from './media-types.js';

export interface RegistryClientOptions {
  /** Registries (host or host:port) spoken to over plain HTTP. Loopback registries always are. */
  insecureRegistries: string[];
  /** Timeout of one request until its headers arrive. */
  requestTimeoutMs: number;
}

/** A challenge from WWW-Authenticate: scheme and parameters. */
interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenge(header: string): Challenge {
  const space = header.indexOf(' ');
  const scheme = (space < 0 ? header : header.slice(0, space)).toLowerCase();
  const params: Record<string, string> = {};
  for (const match of header.slice(space + 1).matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[match[1]!.toLowerCase()] = match[2]!;
  return { scheme, params };
}

export function sha256(data: Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** The most berth reads of a manifest or index (the distribution spec's recommended 4 MiB)… */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
/** …of an image config… */
export const MAX_CONFIG_BYTES = 8 * 1024 * 1024;
/** …of a token service's answer… */
const MAX_TOKEN_BYTES = 1024 * 1024;
/** …and of an error body (only its start is shown). */
const MAX_ERROR_BYTES = 4096;

/**
 * A response body, read up to `max` bytes: a registry that sends more (or streams without end)
 * fails the pull with "too large", and the rest is never read.
 */
export async function readBounded(response: Response, max: number, operation: string): Promise<Buffer> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > max) {
    await response.body?.cancel().catch(() => undefined);
    throw new RuntimeError('invalid', operation, `too large: ${declared} bytes, at most ${max} are read`);
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of (response.body ?? []) as AsyncIterable<Uint8Array>) {
    size += chunk.length;
    if (size > max) {
      await response.body?.cancel().catch(() => undefined);
      throw new RuntimeError('invalid', operation, `too large: more than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Whether a reference's tag-or-digest is a digest (then what is fetched must have exactly it). */
const isDigest = (tagOrDigest: string) => /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-f]{32,}$/.test(tagOrDigest);

const isLoopback = (host: string) => /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/.test(host);

/**
 * A client of the OCI distribution API for pulls: resolves tags, fetches manifests and blobs, and
 * answers Basic and Bearer challenges. Everything fetched is checked against its digest.
 */
export class RegistryClient {
  /** Authorization header per registry, repository and credentials, once a challenge was answered. */
  private readonly authorizations = new Map<string, string>();

  constructor(private readonly options: RegistryClientOptions) {}

  private base(name: ImageName): string {
    const insecure = isLoopback(name.endpoint) || this.options.insecureRegistries.includes(name.endpoint);
    return `${insecure ? 'http' : 'https'}://${name.endpoint}/v2/${name.repository}`;
  }

  /** The descriptor a tag (or digest) points at. */
  async resolve(name: ImageName, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<OciDescriptor> {
    const url = `${this.base(name)}/manifests/${name.tagOrDigest}`;
    const descriptor = await this.describe(url, name, auth, signal);
    // A pinned digest is a promise: a registry that answers with another manifest fails the pull.
    if (isDigest(name.tagOrDigest) && descriptor.digest !== name.tagOrDigest) {
      throw new RuntimeError('invalid', `resolve ${url}`, `the registry answered the pinned digest ${name.tagOrDigest} with manifest ${descriptor.digest}`);
    }
    if (descriptor.size > MAX_MANIFEST_BYTES) throw new RuntimeError('invalid', `resolve ${url}`, `the manifest is too large: ${descriptor.size} bytes, at most ${MAX_MANIFEST_BYTES} are read`);
    return descriptor;
  }

  private async describe(url: string, name: ImageName, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<OciDescriptor> {
    const head = await this.request('HEAD', url, name, auth, { accept: MANIFEST_ACCEPT }, signal);
    const digest = head.headers.get('docker-content-digest');
    const mediaType = head.headers.get('content-type')?.split(';')[0];
    const size = Number(head.headers.get('content-length'));
    if (head.ok && digest && mediaType && Number.isFinite(size)) return { digest, mediaType, size };
    // Some registries answer HEAD without the digest: fetch and hash.
    const get = await this.request('GET', url, name, auth, { accept: MANIFEST_ACCEPT }, signal);
    const body = await readBounded(get, MAX_MANIFEST_BYTES, `GET ${url}`);
    const type = get.headers.get('content-type')?.split(';')[0] ?? (JSON.parse(body.toString('utf8')) as { mediaType?: string }).mediaType ?? '';
    return { digest: sha256(body), mediaType: type, size: body.length };
  }

  /** A manifest or index, verified against its descriptor. */
  async fetchManifest(name: ImageName, descriptor: OciDescriptor, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<Buffer> {
    if (descriptor.size > MAX_MANIFEST_BYTES) throw new RuntimeError('invalid', `fetch manifest ${descriptor.digest}`, `too large: ${descriptor.size} bytes, at most ${MAX_MANIFEST_BYTES} are read`);
    const response = await this.request('GET', `${this.base(name)}/manifests/${descriptor.digest}`, name, auth, { accept: MANIFEST_ACCEPT }, signal);
    const body = await readBounded(response, MAX_MANIFEST_BYTES, `fetch manifest ${descriptor.digest}`);
    verify(`manifest ${descriptor.digest}`, body, descriptor);
    return body;
  }

  /** A small blob (an image config) in memory, verified. */
  async fetchSmallBlob(name: ImageName, descriptor: OciDescriptor, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<Buffer> {
    if (descriptor.size > MAX_CONFIG_BYTES) throw new RuntimeError('invalid', `fetch blob ${descriptor.digest}`, `too large: ${descriptor.size} bytes, at most ${MAX_CONFIG_BYTES} are read`);
    const response = await this.request('GET', `${this.base(name)}/blobs/${descriptor.digest}`, name, auth, {}, signal);
    const body = await readBounded(response, MAX_CONFIG_BYTES, `fetch blob ${descriptor.digest}`);
    verify(`blob ${descriptor.digest}`, body, descriptor);
    return body;
  }

  /**
   * A blob as a stream of chunks, starting at `offset`. The caller verifies the digest as it
   * writes (the whole blob may not pass through memory at once).
   */
  async fetchBlob(name: ImageName, descriptor: OciDescriptor, auth: RegistryAuth | undefined, offset: number, signal?: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const headers: Record<string, string> = offset > 0 ? { range: `bytes=${offset}-` } : {};
    const response = await this.request('GET', `${this.base(name)}/blobs/${descriptor.digest}`, name, auth, headers, signal);
    if (offset > 0 && response.status !== 206) throw new RuntimeError('internal', `fetch blob ${descriptor.digest}`, 'the registry does not support resuming a download');
    if (!response.body) throw new RuntimeError('internal', `fetch blob ${descriptor.digest}`, 'empty response');
    return response.body as unknown as AsyncIterable<Uint8Array>;
  }

  private async request(method: string, url: string, name: ImageName, auth: RegistryAuth | undefined, headers: Record<string, string>, signal?: AbortSignal): Promise<Response> {
    // Per credentials too: one task's credentials must never open a repository for another.
    const key = `${name.endpoint}/${name.repository}\0${auth ? sha256(Buffer.from(`${auth.username}\0${auth.password}`)) : ''}`;
    const operation = `${method} ${url}`;
    let response = await this.send(method, url, { ...headers, ...this.authHeader(key) }, operation, signal);
    if (response.status === 401) {
      const challenge = response.headers.get('www-authenticate');
      await response.body?.cancel();
      if (!challenge) throw new RuntimeError('unauthorized', operation, 'the registry refused the request and sent no challenge');
      this.authorizations.set(key, await this.answer(parseChallenge(challenge), name, auth, operation, signal));
      response = await this.send(method, url, { ...headers, ...this.authHeader(key) }, operation, signal);
    }
    if (response.ok) return response;
    const detail =
      method === 'HEAD'
        ? `HTTP ${response.status}`
        : `HTTP ${response.status}: ${(await readBounded(response, MAX_ERROR_BYTES, operation).catch(() => Buffer.alloc(0))).toString('utf8').slice(0, 300)}`;
    if (response.status === 401 || response.status === 403) throw new RuntimeError('unauthorized', operation, `${detail}${auth ? '' : ' (no credentials given)'}`);
    if (response.status === 404) throw new RuntimeError('not-found', operation, detail);
    throw new RuntimeError(response.status >= 500 ? 'unavailable' : 'internal', operation, detail);
  }

  private authHeader(key: string): Record<string, string> {
    const value = this.authorizations.get(key);
    return value ? { authorization: value } : {};
  }

  /**
   * One request. The timeout runs until the headers arrive, not over the body: a large blob may
   * take as long as it keeps coming (the image manager ends a pull that stops making progress).
   */
  private async send(method: string, url: string, headers: Record<string, string>, operation: string, signal?: AbortSignal): Promise<Response> {
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(), this.options.requestTimeoutMs);
    try {
      return await fetch(url, { method, headers, redirect: 'follow', signal: signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal });
    } catch (error) {
      if (timeout.signal.aborted) throw new RuntimeError('timeout', operation, `no answer within ${this.options.requestTimeoutMs} ms`);
      if (signal?.aborted) throw new RuntimeError('internal', operation, 'aborted');
      throw new RuntimeError('unavailable', operation, error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error));
    } finally {
      clearTimeout(timer);
    }
  }

  /** The Authorization header that answers a challenge. */
  private async answer(challenge: Challenge, name: ImageName, auth: RegistryAuth | undefined, operation: string, signal?: AbortSignal): Promise<string> {
    const basic = auth ? `Basic ${Buffer.from(`${auth.username}:${auth.password}`).toString('base64')}` : undefined;
    if (challenge.scheme === 'basic') {
      if (!basic) throw new RuntimeError('unauthorized', operation, 'the registry needs credentials and none were given');
      return basic;
    }
    if (challenge.scheme !== 'bearer' || !challenge.params.realm) throw new RuntimeError('unauthorized', operation, `unsupported authentication challenge "${challenge.scheme}"`);
    const url = new URL(challenge.params.realm);
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service);
    url.searchParams.set('scope', challenge.params.scope ?? `repository:${name.repository}:pull`);
    const response = await this.send('GET', url.toString(), basic ? { authorization: basic } : {}, `token from ${url.origin}`, signal);
    if (!response.ok) throw new RuntimeError('unauthorized', operation, `the token service answered HTTP ${response.status}`);
    let body: { token?: string; access_token?: string };
    try {
      body = JSON.parse((await readBounded(response, MAX_TOKEN_BYTES, `token from ${url.origin}`)).toString('utf8')) as typeof body;
    } catch (error) {
      if (error instanceof RuntimeError) throw error;
      throw new RuntimeError('unauthorized', operation, 'the token service sent no JSON');
    }
    const token = body.token ?? body.access_token;
    if (!token) throw new RuntimeError('unauthorized', operation, 'the token service sent no token');
    return `Bearer ${token}`;
  }
}

/** Checks fetched bytes against their descriptor's size and digest. */
export function verify(what: string, data: Uint8Array, descriptor: OciDescriptor): void {
  if (data.length !== descriptor.size) throw new RuntimeError('internal', `verify ${what}`, `expected ${descriptor.size} bytes, got ${data.length}`);
  const digest = sha256(data);
  if (digest !== descriptor.digest) throw new RuntimeError('internal', `verify ${what}`, `digest mismatch: expected ${descriptor.digest}, got ${digest}`);
}
