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
    const head = await this.request('HEAD', url, name, auth, { accept: MANIFEST_ACCEPT }, signal);
    const digest = head.headers.get('docker-content-digest');
    const mediaType = head.headers.get('content-type')?.split(';')[0];
    const size = Number(head.headers.get('content-length'));
    if (head.ok && digest && mediaType && Number.isFinite(size)) return { digest, mediaType, size };
    // Some registries answer HEAD without the digest: fetch and hash.
    const get = await this.request('GET', url, name, auth, { accept: MANIFEST_ACCEPT }, signal);
    const body = new Uint8Array(await get.arrayBuffer());
    const type = get.headers.get('content-type')?.split(';')[0] ?? (JSON.parse(Buffer.from(body).toString('utf8')) as { mediaType?: string }).mediaType ?? '';
    return { digest: sha256(body), mediaType: type, size: body.length };
  }

  /** A manifest or index, verified against its descriptor. */
  async fetchManifest(name: ImageName, descriptor: OciDescriptor, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<Buffer> {
    const response = await this.request('GET', `${this.base(name)}/manifests/${descriptor.digest}`, name, auth, { accept: MANIFEST_ACCEPT }, signal);
    const body = Buffer.from(await response.arrayBuffer());
    verify(`manifest ${descriptor.digest}`, body, descriptor);
    return body;
  }

  /** A small blob (an image config) in memory, verified. */
  async fetchSmallBlob(name: ImageName, descriptor: OciDescriptor, auth: RegistryAuth | undefined, signal?: AbortSignal): Promise<Buffer> {
    const response = await this.request('GET', `${this.base(name)}/blobs/${descriptor.digest}`, name, auth, {}, signal);
    const body = Buffer.from(await response.arrayBuffer());
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
    const detail = method === 'HEAD' ? `HTTP ${response.status}` : `HTTP ${response.status}: ${(await response.text()).slice(0, 300)}`;
    if (response.status === 401 || response.status === 403) throw new RuntimeError('unauthorized', operation, `${detail}${auth ? '' : ' (no credentials given)'}`);
    if (response.status === 404) throw new RuntimeError('not-found', operation, detail);
    throw new RuntimeError(response.status >= 500 ? 'unavailable' : 'internal', operation, detail);
  }

  private authHeader(key: string): Record<string, string> {
    const value = this.authorizations.get(key);
    return value ? { authorization: value } : {};
  }

  private async send(method: string, url: string, headers: Record<string, string>, operation: string, signal?: AbortSignal): Promise<Response> {
    const timeout = AbortSignal.timeout(this.options.requestTimeoutMs);
    try {
      return await fetch(url, { method, headers, redirect: 'follow', signal: signal ? AbortSignal.any([signal, timeout]) : timeout });
    } catch (error) {
      if (timeout.aborted) throw new RuntimeError('timeout', operation, `no answer within ${this.options.requestTimeoutMs} ms`);
      if (signal?.aborted) throw new RuntimeError('internal', operation, 'aborted');
      throw new RuntimeError('unavailable', operation, error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error));
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
    const body = (await response.json()) as { token?: string; access_token?: string };
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
