import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeHttp, listenHttp, splitAddress } from '../http-listener.js';
import type { Logger } from 'pino';
import type { ContainerStatsSample } from '../engine/container-access.js';
import type { TaskMetadataUris } from '../engine/network/metadata-uris.js';
import { bareAddress } from '../engine/network/metadata-uris.js';
import type { ContainerSnapshot, TaskSnapshot } from '../engine/model/task-snapshot.js';
import type { MetadataTokens } from './metadata-tokens.js';
import { RateLimiter } from './rate-limiter.js';

/** What the endpoint reads from the engine. */
export interface MetadataSource {
  listTasks(): TaskSnapshot[];
  /** The task, or undefined when the agent no longer has it. */
  findTask(taskId: string): TaskSnapshot | undefined;
  sample(taskId: string, containerName: string): Promise<ContainerStatsSample>;
}

export interface MetadataServerOptions {
  /** host:port to listen on; containers reach the port at an address of the host on their network. */
  address: string;
  agentId: string;
  requestsPerSecond: number;
  burst: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/**
 * The task metadata endpoint, modelled on ECS's task metadata endpoint v4: a container reads its
 * own metadata at the URI in its environment (ECS_CONTAINER_METADATA_URI_V4), and its task's at
 * `<uri>/task`, with resource use at `<uri>/stats` and `<uri>/task/stats`.
 *
 * A container sees only its own task: the URI holds a token only that container's environment has,
 * and for a task with a network namespace of its own the request must come from the task's address.
 * Requests are rate-limited per container.
 */
export class MetadataServer implements TaskMetadataUris {
  private server: Server | undefined;
  private source: MetadataSource | undefined;
  private readonly limiter: RateLimiter;
  /** token → task and container, filled as URIs are handed out and, after a restart, from the tasks. */
  private readonly byToken = new Map<string, { taskId: string; containerName: string }>();
  private learnedAt = -Infinity;
  readonly port: number;
  bridgeGateway?: string;

  constructor(
    private readonly tokens: MetadataTokens,
    private readonly options: MetadataServerOptions,
    private readonly log: Logger,
  ) {
    this.port = splitAddress(options.address).port;
    this.limiter = new RateLimiter(options.requestsPerSecond, options.burst);
  }

  uriFor(taskId: string, containerName: string, host: string): string {
    const token = this.tokens.tokenFor(taskId, containerName);
    this.byToken.set(token, { taskId, containerName });
    return `http://${host.includes(':') ? `[${host}]` : host}:${this.port}/v4/${token}`;
  }

  async start(source: MetadataSource): Promise<void> {
    this.source = source;
    this.server = await listenHttp(this.options.address, (request, response) => void this.handle(request, response));
    this.log.info({ address: this.options.address }, 'serving task metadata at /v4/<token>');
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await closeHttp(server);
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    try {
      const body = await this.answer(request);
      response.writeHead(200, { 'content-type': 'application/json' }).end(`${JSON.stringify(body)}\n`);
    } catch (error) {
      const status = error instanceof HttpError ? error.status : 500;
      if (status === 500) this.log.error({ err: error, url: request.url }, 'metadata request failed');
      const message = error instanceof Error ? error.message : String(error);
      response.writeHead(status, { 'content-type': 'application/json', ...(error instanceof HttpError ? error.headers : {}) }).end(`${JSON.stringify({ error: message })}\n`);
    }
  }

  private find(token: string): { task: TaskSnapshot; container: ContainerSnapshot } | undefined {
    let owner = this.byToken.get(token);
    // After a restart of the agent containers keep the URIs they were given: learn them again, at
    // most once a second (requests with made-up tokens must not make the agent hash every container).
    if (!owner && performance.now() - this.learnedAt >= 1000) {
      this.learnedAt = performance.now();
      // Rebuilt from the tasks there are: the tokens of tasks cleaned up go.
      this.byToken.clear();
      for (const task of this.source!.listTasks()) {
        for (const c of task.containers) this.byToken.set(this.tokens.tokenFor(task.definition.id, c.name), { taskId: task.definition.id, containerName: c.name });
      }
      owner = this.byToken.get(token);
    }
    if (!owner) return undefined;
    // One task's snapshot per request, not every task's.
    const task = this.source!.findTask(owner.taskId);
    const container = task?.containers.find((c) => c.name === owner.containerName);
    return task && container ? { task, container } : undefined;
  }

  private async answer(request: IncomingMessage): Promise<unknown> {
    if (request.method !== 'GET') throw new HttpError(405, 'only GET is served here', { allow: 'GET' });
    const match = /^\/v4\/([0-9a-f]{40})(\/task)?(\/stats)?\/?$/.exec((request.url ?? '').split('?')[0]!);
    if (!match) throw new HttpError(404, 'not a metadata path: use the URI in ECS_CONTAINER_METADATA_URI_V4 (or BERTH_CONTAINER_METADATA_URI)');
    const token = match[1]!;
    if (!this.limiter.take(token)) throw new HttpError(429, 'too many requests', { 'retry-after': String(this.limiter.retryAfter(token)) });
    const found = this.find(token);
    if (!found) throw new HttpError(404, 'no task has a container with this metadata URI');
    const { task, container } = found;
    // A task with a network namespace of its own asks from its own address, and from nowhere else.
    const own = task.network?.ipAddresses.map(bareAddress);
    const from = (request.socket.remoteAddress ?? '').replace(/^::ffff:/, '');
    if (own && own.length > 0 && !own.includes(from)) throw new HttpError(403, `this metadata belongs to a task at ${own.join(', ')}, not to ${from}`);
    const wholeTask = match[2] !== undefined;
    const stats = match[3] !== undefined;
    if (!stats) return wholeTask ? this.taskMetadata(task) : this.containerMetadata(task, container);
    const sampleOf = (c: ContainerSnapshot) => (c.knownStatus === 'RUNNING' ? this.source!.sample(task.definition.id, c.name).then(statsJson, () => null) : Promise.resolve(null));
    if (!wholeTask) return sampleOf(container);
    const entries = await Promise.all(task.containers.filter((c) => c.runtimeId).map(async (c) => [c.runtimeId!, await sampleOf(c)] as const));
    return Object.fromEntries(entries);
  }

  private containerMetadata(task: TaskSnapshot, c: ContainerSnapshot): Record<string, unknown> {
    const definition = task.definition.containers.find((d) => d.name === c.name);
    const addresses = task.network?.ipAddresses.map(bareAddress) ?? [];
    return withoutUndefined({
      DockerId: c.runtimeId ?? '',
      Name: c.name,
      DockerName: c.runtimeName,
      Image: definition?.image ?? '',
      Labels: definition?.labels ?? {},
      DesiredStatus: c.desiredStatus,
      KnownStatus: c.knownStatus,
      ExitCode: c.exitCode,
      Limits: { CPU: definition?.cpuUnits ?? 0, Memory: definition?.memoryMib ?? 0 },
      CreatedAt: c.createdAt?.toISOString(),
      StartedAt: c.startedAt?.toISOString(),
      FinishedAt: c.finishedAt?.toISOString(),
      Type: 'NORMAL',
      Health: c.healthStatus === 'NONE' ? undefined : withoutUndefined({ status: c.healthStatus, statusSince: c.healthCheckedAt?.toISOString(), output: c.healthOutput || undefined }),
      RestartCount: c.restartCount,
      Networks: [{ NetworkMode: task.definition.networkMode, IPv4Addresses: addresses }],
      Ports: c.portBindings.map((p) => ({ ContainerPort: p.containerPort, Protocol: p.protocol, HostPort: p.hostPort, HostIp: p.hostIp || '0.0.0.0' })),
    });
  }

  private taskMetadata(task: TaskSnapshot): Record<string, unknown> {
    const d = task.definition;
    return withoutUndefined({
      Cluster: this.options.agentId,
      TaskARN: d.id,
      Family: d.family,
      Revision: String(d.revision),
      DesiredStatus: task.desiredStatus,
      KnownStatus: task.knownStatus,
      Limits: d.cpuUnits || d.memoryMib ? { CPU: d.cpuUnits / 1024, Memory: d.memoryMib } : undefined,
      PullStartedAt: earliest(task.containers.map((c) => c.pulledAt)),
      ExecutionStoppedAt: task.stoppedAt?.toISOString(),
      Containers: task.containers.map((c) => this.containerMetadata(task, c)),
    });
  }
}

function earliest(times: (Date | undefined)[]): string | undefined {
  const known = times.filter((t): t is Date => t !== undefined);
  return known.length > 0 ? new Date(Math.min(...known.map((t) => t.getTime()))).toISOString() : undefined;
}

/** Resource use in the shape of Docker's stats (as ECS's endpoint returns it), with the fields berth has. */
function statsJson(sample: ContainerStatsSample): Record<string, unknown> {
  return {
    read: sample.time.toISOString(),
    cpu_stats: { cpu_usage: { total_usage: sample.cpuUsageNanos } },
    memory_stats: { usage: sample.memoryUsageBytes, limit: sample.memoryLimitBytes },
    networks: { eth0: { rx_bytes: sample.network.rxBytes, tx_bytes: sample.network.txBytes, rx_packets: sample.network.rxPackets, tx_packets: sample.network.txPackets } },
    pids_stats: { current: sample.pids },
  };
}

function withoutUndefined(value: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}
