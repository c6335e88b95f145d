import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { connect } from 'node:net';
import { dirname } from 'node:path';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { Logger } from 'pino';
import type { BerthConfig } from '../config/config.js';
import type { RuntimeMonitor } from '../engine/runtime-monitor.js';
import type { TaskEngine } from '../engine/task-engine.js';
import { TaskServiceService } from '../gen/berth/agent/v1/task_service.js';
import { addHealth } from './health.js';
import { acceptingPreEncoded } from './pre-encoded.js';
import { addReflection } from './reflection.js';
import { withTolerantDecoding } from './request-decoding.js';
import { createTaskService, type MembershipView } from './task-service.js';
import type { EventDeliveryObserver } from './watch-events.js';

/** True when something accepts connections on the unix socket. */
function socketInUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/**
 * The agent's gRPC server: TaskService, grpc.health.v1 and reflection, on a unix socket (and on
 * TCP when configured, with TLS or mTLS when certificates are given).
 */
/** A group's id, from a number or a name in /etc/group. */
function groupId(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  const line = readFileSync('/etc/group', 'utf8')
    .split('\n')
    .find((l) => l.split(':')[0] === group);
  const gid = line?.split(':')[2];
  if (gid === undefined) throw new Error(`grpc.socketGroup: no group "${group}" in /etc/group`);
  return Number(gid);
}

export class AgentServer {
  private readonly server: Server;
  /** Aborted at shutdown; every open stream listens to it (their number is bounded by limits). */
  private readonly shutdown = (() => {
    const controller = new AbortController();
    setMaxListeners(0, controller.signal);
    return controller;
  })();
  private detachHealth: (() => void) | undefined;

  constructor(
    private readonly engine: TaskEngine,
    private readonly monitor: RuntimeMonitor,
    private readonly config: BerthConfig,
    private readonly log: Logger,
    /** Told how long each event took from its commit to a watcher's stream (the metrics). */
    private readonly delivery?: EventDeliveryObserver,
    /** The agent's standing in its fleet, for GetAgentInfo; unset without `cluster` config. */
    private readonly membership?: { view(): MembershipView },
  ) {
    const { maxMessageBytes, maxConcurrentStreams, keepaliveTimeMs, keepaliveTimeoutMs } = config.grpc;
    this.server = new Server({
      'grpc.max_receive_message_length': maxMessageBytes,
      'grpc.max_send_message_length': maxMessageBytes,
      'grpc.max_concurrent_streams': maxConcurrentStreams,
      'grpc.keepalive_time_ms': keepaliveTimeMs,
      'grpc.keepalive_timeout_ms': keepaliveTimeoutMs,
      // The agent serves no channelz service, and channelz would count and timestamp every call
      // and message, and register every connection.
      'grpc.enable_channelz': 0,
    });
  }

  async start(): Promise<void> {
    const taskService = withTolerantDecoding(
      acceptingPreEncoded(TaskServiceService),
      createTaskService(this.engine, {
        heartbeatIntervalMs: this.config.events.heartbeatIntervalMs,
        shutdown: this.shutdown.signal,
        delivery: this.delivery,
        membership: this.membership && (() => this.membership!.view()),
      }),
    );
    this.server.addService(taskService.service, taskService.implementation);
    this.detachHealth = addHealth(this.server, this.monitor, this.engine.storeHealth);
    addReflection(this.server);

    const socketPath = this.config.grpc.socketPath;
    mkdirSync(dirname(socketPath), { recursive: true });
    if (existsSync(socketPath)) {
      if (!lstatSync(socketPath).isSocket()) throw new Error(`${socketPath} exists and is not a socket`);
      if (await socketInUse(socketPath)) throw new Error(`${socketPath} is in use: is another berth running?`);
      unlinkSync(socketPath);
      this.log.info({ socket: socketPath }, 'replaced a stale socket');
    }
    await this.bind(`unix://${socketPath}`, ServerCredentials.createInsecure());
    chmodSync(socketPath, this.config.grpc.socketMode);
    const group = this.config.grpc.socketGroup;
    if (group !== undefined) chownSync(socketPath, -1, groupId(group));
    this.log.info({ socket: socketPath, mode: this.config.grpc.socketMode.toString(8), group }, 'listening on unix socket');

    const tcp = this.config.grpc.tcpAddress;
    if (tcp) {
      const tls = this.config.grpc.tls;
      const credentials = tls
        ? ServerCredentials.createSsl(
            tls.clientCaFile ? readFileSync(tls.clientCaFile) : null,
            [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }],
            Boolean(tls.clientCaFile),
          )
        : ServerCredentials.createInsecure();
      const port = await this.bind(tcp, credentials);
      this.log.info({ address: tcp, port, tls: Boolean(tls), mtls: Boolean(tls?.clientCaFile) }, 'listening on TCP');
    }
  }

  private bind(address: string, credentials: ServerCredentials): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials, (error, port) => (error ? reject(error) : resolve(port)));
    });
  }

  /** Ends watch streams, lets unary calls finish (at most `graceMs`), then closes. */
  async stop(graceMs = 5000): Promise<void> {
    this.shutdown.abort();
    this.detachHealth?.();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
    try {
      unlinkSync(this.config.grpc.socketPath);
    } catch {
      // already gone
    }
  }
}
