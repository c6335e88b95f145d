import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestRegistry } from './registry.js';

export interface BearerProxy {
  /** host:port on 127.0.0.1, to pull from as a registry. */
  address: string;
  /** Tokens handed out so far. */
  tokensIssued(): number;
  stop(): Promise<void>;
}

/**
 * A registry front that speaks the Bearer token flow, as Docker Hub and most hosted registries
 * do: a request without a token gets 401 with `WWW-Authenticate: Bearer realm=…,service=…,scope=…`;
 * the realm hands out a token for the registry's username and password (Basic); requests with a
 * valid token are passed on to the test registry. Pull requests only (GET and HEAD).
 */
export async function startBearerProxy(registry: TestRegistry): Promise<BearerProxy> {
  const tokens = new Set<string>();
  const basic = `Basic ${Buffer.from(`${registry.username}:${registry.password}`).toString('base64')}`;
  let address = '';
  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', `http://${address}`);
    if (url.pathname === '/token') {
      if (request.headers.authorization !== basic) {
        response.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
        return;
      }
      const token = randomBytes(16).toString('hex');
      tokens.add(token);
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    const bearer = /^Bearer (\S+)$/.exec(request.headers.authorization ?? '')?.[1];
    if (!bearer || !tokens.has(bearer)) {
      const repository = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1];
      const scope = repository ? `,scope="repository:${repository}:pull"` : '';
      response.writeHead(401, { 'www-authenticate': `Bearer realm="http://${address}/token",service="berth-test"${scope}` }).end();
      return;
    }
    const headers: Record<string, string> = { authorization: basic };
    for (const name of ['accept', 'range']) if (typeof request.headers[name] === 'string') headers[name] = request.headers[name] as string;
    const upstream = await fetch(`http://${registry.address}${url.pathname}${url.search}`, { method: request.method, headers });
    const passOn: Record<string, string> = {};
    for (const name of ['content-type', 'content-length', 'docker-content-digest', 'content-range']) {
      const value = upstream.headers.get(name);
      if (value) passOn[name] = value;
    }
    response.writeHead(upstream.status, passOn);
    if (request.method === 'HEAD' || !upstream.body) response.end();
    else for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) response.write(chunk);
    response.end();
  };
  const server = createServer((request, response) => {
    handle(request, response).catch(() => response.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  address = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    address,
    tokensIssued: () => tokens.size,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
