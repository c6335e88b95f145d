import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestRegistry } from './registry.js';

export interface BearerProxy {
  /** host:port on 127.0.0.1, to pull from as a registry. */
  address: string;
  /** Tokens handed out so far. */
  tokensIssued(): number;
  /** Blob downloads redirected to storage and then fetched from there. */
  blobsFromStorage(): number;
  stop(): Promise<void>;
}

/** How long a token is good for. */
const TOKEN_LIFETIME_S = 60;

/**
 * A registry front that behaves as Docker Hub and most hosted registries do: a request without a
 * valid token gets 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the realm hands
 * out a token for the registry's username and password (Basic) that is good for the one repository
 * of its scope and for a minute; manifest requests with a valid token are passed on to the test
 * registry, and blob downloads are redirected to a storage URL (signed, no token needed), as
 * registries that keep blobs in object storage do. Pull requests only (GET and HEAD).
 */
export async function startBearerProxy(registry: TestRegistry): Promise<BearerProxy> {
  /** Token -> the repository it may pull and when it expires. */
  const tokens = new Map<string, { repository: string; expires: number }>();
  /** Signed storage paths handed out by redirects. */
  const signed = new Set<string>();
  let fromStorage = 0;
  const basic = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}`;
  let address = '';
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', `http://${address}`);
    if (url.pathname === '/token') {
      if (request.headers.authorization !== basic) {
        response.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const scoped = /^repository:(.+):pull$/.exec(url.searchParams.get('scope') ?? '')?.[1];
      if (!scoped) {
        response.writeHead(400).end('{"errors":[{"code":"DENIED","message":"a pull scope is required"}]}');
        return;
      }
      const token = randomBytes(16).toString('hex');
      tokens.set(token, { repository: scoped, expires: Date.now() + TOKEN_LIFETIME_S * 1000 });
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: TOKEN_LIFETIME_S }));
      return;
    }
    if (url.pathname.startsWith('/storage/')) {
      // A signed URL: no token, but only as handed out.
      if (!signed.has(url.pathname + url.search)) {
        response.writeHead(403).end();
        return;
      }
      fromStorage++;
      return passOn(`/v2/${url.pathname.slice('/storage/'.length)}`);
    }
    const route = /^\/v2\/(.+)\/(manifests|blobs)\/(.+)$/.exec(url.pathname);
    const bearer = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
    const grant = bearer ? tokens.get(bearer) : undefined;
    if (!grant || grant.expires < Date.now() || (route && grant.repository !== route[1])) {
      const scope = route ? `,scope="repository:${route[1]}:pull"` : '';
      response.writeHead(401, { 'www-authenticate': `Bearer realm="http://${address}/token",service="berth-test"${scope}` }).end();
      return;
    }
    if (route?.[2] === 'blobs' && request.method === 'GET') {
      const location = `/storage/${route[1]}/blobs/${route[3]}?signature=${randomBytes(8).toString('hex')}`;
      signed.add(location);
      response.writeHead(307, { location: `http://${address}${location}` }).end();
      return;
    }
    return passOn(url.pathname);

    async function passOn(path: string): Promise<void> {
      const headers: Record<string, string> = { authorization: basic };
      for (const name of ['accept', 'range']) if (typeof request.headers[name] === 'string') headers[name] = request.headers[name] as string;
      const upstream = await fetch(`http://${registry.address}${path}`, { method: request.method, headers });
      const forwarded: Record<string, string> = {};
      for (const name of ['content-type', 'content-length', 'docker-content-digest', 'content-range']) {
        const value = upstream.headers.get(name);
        if (value) forwarded[name] = value;
      }
      response.writeHead(upstream.status, forwarded);
      if (request.method === 'HEAD' || !upstream.body) response.end();
      else for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) response.write(chunk);
      response.end();
    }
  };
  const server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    address,
    tokensIssued: () => tokens.size,
    blobsFromStorage: () => fromStorage,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
