import { createServer, type RequestListener, type Server } from 'node:http';

/** Splits "host:port" ("[::1]:9464" too). */
export function splitAddress(address: string): { host: string; port: number } {
  const separator = address.lastIndexOf(':');
  return { host: address.slice(0, separator).replace(/^\[|\]$/g, ''), port: Number(address.slice(separator + 1)) };
}

/** An HTTP server listening on `address` (host:port); rejects when it cannot listen there. */
export async function listenHttp(address: string, handler: RequestListener): Promise<Server> {
  const { host, port } = splitAddress(address);
  const server = createServer(handler);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}

/** Stops listening and ends every open connection. */
export function closeHttp(server: Server): Promise<void> {
  return new Promise<void>((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
