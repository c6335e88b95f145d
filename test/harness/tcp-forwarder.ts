import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpForwarder {
  /** host:port where the forwarder listens. */
  address: string;
  close(): Promise<void>;
}

/**
 * Listens on `host` (a free port) and carries each connection to `target` (host:port): lets a
 * daemon in another network namespace reach a server that listens on the host's loopback.
 */
export async function forwardTcp(host: string, target: string, port = 0): Promise<TcpForwarder> {
  const [targetHost, targetPort] = [target.slice(0, target.lastIndexOf(':')), Number(target.slice(target.lastIndexOf(':') + 1))];
  const open = new Set<Socket>();
  const server = createServer((incoming) => {
    const outgoing = createConnection({ host: targetHost, port: targetPort });
    open.add(incoming).add(outgoing);
    incoming.pipe(outgoing).pipe(incoming);
    incoming.on('error', () => outgoing.destroy());
    outgoing.on('error', () => incoming.destroy());
    incoming.on('close', () => outgoing.destroy());
    outgoing.on('close', () => incoming.destroy());
    incoming.on('close', () => open.delete(incoming));
    outgoing.on('close', () => open.delete(outgoing));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    address: `${host}:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        for (const socket of open) socket.destroy();
      }),
  };
}

/** A forwarder whose link can be cut (every connection closed, new ones refused) and restored on the same port. */
export interface CuttableForwarder extends TcpForwarder {
  cut(): Promise<void>;
  restore(): Promise<void>;
}

/** forwardTcp on a fixed address that can be cut and restored: a network partition between a client and `target`. */
export async function cuttableForwarder(host: string, target: string): Promise<CuttableForwarder> {
  let current = await forwardTcp(host, target);
  const address = current.address;
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  let up = true;
  return {
    address,
    async cut() {
      if (!up) return;
      up = false;
      await current.close();
    },
    async restore() {
      if (up) return;
      current = await forwardTcp(host, target, port);
      up = true;
    },
    close: () => (up ? current.close() : Promise.resolve()),
  };
}
