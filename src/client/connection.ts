import { readFileSync } from 'node:fs';
import { credentials, type ChannelCredentials, type ChannelOptions } from '@grpc/grpc-js';

/** TLS for a TCP address. Each PEM is given by its contents or by a file to read it from. */
export interface TlsOptions {
  /** The CA that signed the agent's certificate; the system's CAs when unset. */
  ca?: string | Buffer;
  caFile?: string;
  /** A client certificate and its key, for an agent that asks for one (mTLS). */
  cert?: string | Buffer;
  certFile?: string;
  key?: string | Buffer;
  keyFile?: string;
  /** The name to expect in the agent's certificate, when it differs from the host in the address. */
  serverName?: string;
}

export interface ConnectOptions {
  /** A unix socket (`/run/berth/berth.sock` or `unix:///run/berth/berth.sock`) or `host:port`. */
  address: string;
  /** TLS: `true` for the system's CAs, or the CA, client certificate and server name to use. */
  tls?: boolean | TlsOptions;
  /** The longest the channel waits between attempts to reconnect to an agent that went away; 5 s by default. */
  maxReconnectBackoffMs?: number;
}

export const DEFAULT_ADDRESS = 'unix:///run/berth/berth.sock';

/** The HTTP/2 receive window asked for: more than the largest message the agent sends (3 MiB). */
const RECEIVE_WINDOW_BYTES = 4 * 1024 * 1024;

/** The target grpc-js understands for an address. */
export function grpcTarget(address: string): string {
  if (address.startsWith('unix:')) return address;
  if (address.startsWith('/')) return `unix://${address}`;
  return address;
}

/** A problem with the options themselves: a file that cannot be read, a certificate without its key. */
export class ConnectOptionsError extends Error {
  override name = 'ConnectOptionsError';
}

function pem(value: string | Buffer | undefined, file: string | undefined, what: string): Buffer | null {
  if (value !== undefined && file !== undefined) throw new ConnectOptionsError(`give the ${what} or its file, not both`);
  if (value !== undefined) return Buffer.isBuffer(value) ? value : Buffer.from(value, 'utf8');
  if (file === undefined) return null;
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConnectOptionsError(`cannot read the ${what} ${file}: ${(error as Error).message}`);
  }
}

/** The channel credentials and options for a connection to an agent. */
export function channelFor(options: ConnectOptions): { target: string; credentials: ChannelCredentials; options: ChannelOptions } {
  const tls = options.tls === true ? {} : options.tls || undefined;
  let channel = credentials.createInsecure();
  if (tls) {
    const cert = pem(tls.cert, tls.certFile, 'client certificate');
    const key = pem(tls.key, tls.keyFile, 'client key');
    if ((cert === null) !== (key === null)) throw new ConnectOptionsError('a client certificate and its key go together');
    channel = credentials.createSsl(pem(tls.ca, tls.caFile, 'CA certificate'), key, cert);
  }
  return {
    target: grpcTarget(options.address),
    credentials: channel,
    options: {
      // A page of ListTasks or a part of the snapshot (up to 3 MiB) arrives without waiting for
      // window updates: HTTP/2's default window of 64 KiB takes a round trip for each 64 KiB.
      'grpc-node.flow_control_window': RECEIVE_WINDOW_BYTES,
      // grpc-js waits up to 2 minutes between reconnects by default: an agent that restarted
      // would be found late.
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': options.maxReconnectBackoffMs ?? 5000,
      ...(tls?.serverName ? { 'grpc.ssl_target_name_override': tls.serverName, 'grpc.default_authority': tls.serverName } : {}),
    },
  };
}
