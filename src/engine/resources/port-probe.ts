import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import type { PortProbe } from './host-resources.js';

/** Free when this process can bind the port on every address, then lets it go at once. */
export const probeHostPort: PortProbe = (port, protocol) =>
  new Promise((resolve) => {
    if (protocol === 'tcp') {
      const server = createServer();
      server.once('error', () => resolve(false));
      server.listen({ port, host: '0.0.0.0', exclusive: true }, () => server.close(() => resolve(true)));
    } else {
      const socket = createSocket('udp4');
      socket.once('error', () => {
        socket.close();
        resolve(false);
      });
      socket.bind(port, '0.0.0.0', () => socket.close(() => resolve(true)));
    }
  });
