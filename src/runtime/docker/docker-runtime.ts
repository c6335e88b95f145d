// Longer than most files on purpose: the whole runtime contract for Docker, each method its short
// sequence of Docker API calls. Errors, events, logs and pull progress are files of their own.

import { hostCapabilities, LINUX_CAPABILITIES } from '../capabilities.js';
import { PassThrough, type Readable } from 'node:stream';
import Docker from 'dockerode';
import { Agent } from 'node:http';
import type { ContainerRuntime } from '../container-runtime.js';
import { RuntimeError } from '../errors.js';
import { registryHost, requireImageReference, withDefaultTag } from '../image-reference.js';
import { killProcessTree, startedBeforeThisProcess } from '../process-tree.js';
import { checkProcessIdentity } from '../process-root.js';
import { attachDockerContainer, openDockerSession, runningExec } from './docker-session.js';
import type {
  ContainerAttachment,
  ContainerInfo,
  ContainerSpec,
  ContainerState,
  ExecOptions,
  ContainerStatsSample,
  ExecResult,
  ImageInfo,
  LogLine,
  LogOptions,
  LogRotation,
  PortBinding,
  PullOptions,
  RuntimeEvent,
  RuntimeVersion,
  RegistryAuth,
  SessionProcess,
  SessionProcessOptions,
  VolumeInfo,
  VolumeSpec,
} from '../types.js';
import { classifyImageMessage, toRuntimeError } from './docker-errors.js';
import { readDockerEvents } from './docker-events.js';
import { DockerVolumes } from './docker-volumes.js';
import { SharedNetworkFiles } from './shared-network-files.js';
import { dockerLogLines, dockerSince, dockerTerminalLogLines } from './docker-logs.js';
import { namespaceTraffic } from '../net-dev.js';
import { cgroupMembership, cgroupUsage } from '../cgroup-usage.js';
import { totalmem } from 'node:os';
import { join, posix } from 'node:path';
import { type DockerPullMessage, PullProgressTracker } from './docker-pull.js';
import dockerModemHttp from 'docker-modem/lib/http.js';

// docker-modem follows an HTTP redirect with a request of its own whose errors reach no handler
// (an uncaught exception). dockerd has no reason to redirect the API: following none makes a
// redirect an error of the call that got it. (A static import: the same module dockerode uses,
// in the bundle too.)
dockerModemHttp.maxRedirects = 0;
import { withTimeout } from '../with-timeout.js';

export interface DockerRuntimeOptions {
  /** unix:///path/to/docker.sock or tcp://host:port */
  host: string;
  /** Timeout of ordinary calls. */
  callTimeoutMs: number;
  /** Timeout of a whole image pull. */
  pullTimeoutMs: number;
  /** Containers' logs (json-file) are rotated by this; unbounded when unset. */
  logRotation?: LogRotation;
  /**
   * Where berth keeps files of its own for Docker's containers: the /etc files of those that join
   * a pause container. On the host dockerd runs on (berth's own for a task network).
   */
  stateDir: string;
}

const NO_TIME = '0001-01-01T00:00:00Z';
const DEFAULT_EXEC_OUTPUT = 64 * 1024;
/** Containers whose stats come from their cgroup remembered at most (each is forgotten at its removal). */
const MAX_STATS_FROM_CGROUP = 10_000;
/** The execs of one container looked at for leftovers, at most (Docker keeps ended ones for a while). */
const MAX_EXECS_LOOKED_AT = 1000;

function parseTime(value: string | undefined): Date | undefined {
  if (!value || value.startsWith('0001-01-01')) return undefined;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? undefined : time;
}

function toState(status: string | undefined): ContainerState {
  switch (status) {
    case 'created':
    case 'running':
    case 'paused':
    case 'restarting':
    case 'exited':
    case 'dead':
      return status;
    default:
      return 'unknown';
  }
}

/**
 * HostConfig for a privileged container. Docker's own `Privileged` asks runc for every capability
 * Docker knows, which fails on a host whose bounding set lacks some (a confined host): there the
 * same is built from parts: every capability Docker knows but those the host lacks, no seccomp or
 * AppArmor profile, no masked or read-only /proc paths, every device allowed by the device cgroup.
 */
function privilegedSettings(): Record<string, unknown> {
  const host = new Set(hostCapabilities());
  // Docker 20.10 knows the capabilities up to CAP_AUDIT_READ (bit 37) by name.
  const missing = LINUX_CAPABILITIES.slice(0, 38).filter((c) => !host.has(c));
  if (missing.length === 0) return { Privileged: true };
  return {
    CapAdd: ['ALL'],
    CapDrop: missing.map((c) => c.slice(4)),
    SecurityOpt: ['seccomp=unconfined', 'apparmor=unconfined'],
    MaskedPaths: [],
    ReadonlyPaths: [],
    DeviceCgroupRules: ['a *:* rwm'],
  };
}

/**
 * Whether the container needs the /etc files of Docker's network sandbox: extra hosts and
 * name servers of its own are written there. A container of network "none" without them gets
 * berth's shared files instead, and no sandbox.
 */
function needsDockersNetworkFiles(spec: ContainerSpec): boolean {
  return (spec.extraHosts?.length ?? 0) > 0 || (spec.dnsServers?.length ?? 0) > 0 || (spec.dnsSearchDomains?.length ?? 0) > 0;
}

/** Docker's HostConfig.NetworkMode for a spec. */
function networkModeOf(spec: ContainerSpec): string {
  if (spec.network === 'namespace') throw new RuntimeError('invalid', `create container "${spec.name}"`, "Docker joins only another container's network namespace, not one given by its path");
  if (spec.network !== 'container') return spec.network;
  if (!spec.networkContainer) throw new RuntimeError('invalid', `create container "${spec.name}"`, 'network "container" needs the container to join');
  return `container:${spec.networkContainer.id}`;
}

function connectionOptions(host: string): Docker.DockerOptions {
  if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) };
  if (host.startsWith('/')) return { socketPath: host };
  const url = new URL(host.replace(/^tcp:/, 'http:'));
  return { protocol: 'http', host: url.hostname, port: Number(url.port || 2375) };
}

/** The parts of Docker's stats answer berth reads. */
interface DockerStats {
  read?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number } };
  memory_stats?: { usage?: number; limit?: number; stats?: { total_inactive_file?: number; inactive_file?: number } };
  networks?: Record<string, { rx_bytes: number; tx_bytes: number; rx_packets: number; tx_packets: number }>;
  pids_stats?: { current?: number };
}

/** ContainerRuntime on a Docker Engine, through its HTTP API (dockerode). */
export class DockerRuntime implements ContainerRuntime {
  readonly name = 'docker' as const;
  readonly hasBridgeNetwork = true;
  readonly joinsNetworkNamespaces = false;
  readonly opensStdinWithoutTerminal = true;

  /** Docker judges log drivers and their options itself, at create: its refusal fails the container. */
  logConfigurationProblem(): undefined {
    return undefined;
  }

  /** Docker's log drivers do not report what they drop. */
  logMessagesDropped(): Promise<number> {
    return Promise.resolve(0);
  }
  private readonly docker: Docker;
  /**
   * The same daemon on a connection of its own for every ping. dockerd that is shutting down has
   * closed its socket but still serves the connections already open (where its calls fail as its
   * parts stop): a ping on a kept-alive connection would say it answers.
   */
  private readonly prober: Docker;
  private readonly volumes: DockerVolumes;
  private readonly sharedNetworkFiles: SharedNetworkFiles;
  private driver: Promise<string> | undefined;
  /** Whether a container has a terminal, by id or name, for reading its logs; forgotten at removal. */
  private readonly terminals = new Map<string, boolean>();
  /**
   * Containers Docker has no stats for (see `stats`), by id or name: the process whose cgroup is
   * read instead, and that cgroup membership. Forgotten at removal, or once the process is not
   * that one any more.
   */
  private readonly statsFromCgroup = new Map<string, { pid: number; membership: string }>();

  constructor(private readonly options: DockerRuntimeOptions) {
    this.docker = new Docker(connectionOptions(options.host));
    // docker-modem gives its requests this agent (dockerode's types do not list the option).
    this.prober = new Docker({ ...connectionOptions(options.host), agent: new Agent({ keepAlive: false }) } as Docker.DockerOptions);
    this.volumes = new DockerVolumes(this.docker, (operation, fn) => this.call(operation, fn));
    this.sharedNetworkFiles = new SharedNetworkFiles(join(options.stateDir, 'network-files'));
  }

  private call<T>(operation: string, fn: (signal: AbortSignal) => Promise<T>, timeoutMs = this.options.callTimeoutMs, about: 'image' | 'other' = 'other'): Promise<T> {
    return withTimeout(operation, timeoutMs, async (signal) => {
      try {
        return await fn(signal);
      } catch (error) {
        throw toRuntimeError(operation, error, about);
      }
    });
  }

  async ping(): Promise<RuntimeVersion> {
    const version = await this.call('ping docker', (abortSignal) => (this.prober as unknown as { version(o: object): Promise<Docker.DockerVersion> }).version({ abortSignal }));
    return { name: 'docker', version: version.Version, apiVersion: version.ApiVersion };
  }

  /** The daemon's cgroup driver ("cgroupfs" or "systemd"), asked once. */
  private cgroupDriver(): Promise<string> {
    this.driver ??= this.call('ask docker for its cgroup driver', (abortSignal) => (this.docker as unknown as { info(o: object): Promise<{ CgroupDriver?: string }> }).info({ abortSignal })).then(
      (info) => info.CgroupDriver ?? 'cgroupfs',
      (error: unknown) => {
        this.driver = undefined;
        throw error;
      },
    );
    return this.driver;
  }

  async pullImage(reference: string, options: PullOptions = {}): Promise<ImageInfo> {
    const ref = withDefaultTag(reference);
    const operation = `pull image "${ref}"`;
    requireImageReference(reference, operation);
    await withTimeout(
      operation,
      options.timeoutMs ?? this.options.pullTimeoutMs,
      async (abortSignal) => {
        const authconfig = options.auth ? { username: options.auth.username, password: options.auth.password, serveraddress: registryHost(ref) } : undefined;
        let stream: Readable;
        try {
          stream = (await this.docker.pull(ref, { authconfig, abortSignal })) as Readable;
        } catch (error) {
          throw toRuntimeError(operation, error, 'image');
        }
        const tracker = new PullProgressTracker();
        await new Promise<void>((resolve, reject) => {
          this.docker.modem.followProgress(
            stream,
            (error: unknown) => (error ? reject(toRuntimeError(operation, error, 'image')) : resolve()),
            (message: DockerPullMessage) => {
              if (message.error) {
                const detail = message.errorDetail?.message ?? message.error;
                reject(new RuntimeError(classifyImageMessage(detail) ?? 'internal', operation, detail));
                stream.destroy();
                return;
              }
              // Every message counts as activity, even one that does not move the totals.
              options.onProgress?.(tracker.record(message) ?? tracker.totals());
            },
          );
        });
      },
      options.signal,
    );
    return this.inspectImage(ref);
  }

  async inspectImage(reference: string): Promise<ImageInfo> {
    const ref = withDefaultTag(reference);
    requireImageReference(reference, `inspect image "${ref}"`);
    const image = await this.call(`inspect image "${ref}"`, () => this.docker.getImage(ref).inspect(), undefined, 'image');
    return { id: image.Id, references: image.RepoTags ?? [], sizeBytes: image.Size };
  }

  async checkImageAccess(reference: string, auth: RegistryAuth | undefined, timeoutMs = this.options.callTimeoutMs): Promise<void> {
    const ref = withDefaultTag(reference);
    requireImageReference(reference, `check access to image "${ref}"`);
    // dockerd asks the registry for the image's descriptor with these credentials.
    const authconfig = auth ? { username: auth.username, password: auth.password, serveraddress: registryHost(ref) } : undefined;
    const statusCodes = { 200: true, 401: 'unauthorized', 403: 'forbidden', 404: 'not found', 500: 'server error' };
    await this.call(
      `check access to image "${ref}"`,
      (abortSignal) =>
        new Promise<void>((resolve, reject) => {
          this.docker.modem.dial({ path: `/distribution/${ref}/json`, method: 'GET', authconfig, abortSignal, statusCodes }, (error: unknown) => (error ? reject(error) : resolve()));
        }),
      timeoutMs,
      'image',
    );
  }

  async removeImage(reference: string): Promise<void> {
    const ref = withDefaultTag(reference);
    requireImageReference(reference, `remove image "${ref}"`);
    try {
      await this.call(`remove image "${ref}"`, (abortSignal) => this.docker.getImage(ref).remove({ abortSignal }), undefined, 'image');
    } catch (error) {
      if (!(error instanceof RuntimeError && error.kind === 'not-found')) throw error;
    }
  }

  createVolume(spec: VolumeSpec): Promise<void> {
    return this.volumes.create(spec);
  }

  inspectVolume(name: string): Promise<VolumeInfo> {
    return this.volumes.inspect(name);
  }

  removeVolume(name: string): Promise<void> {
    return this.volumes.remove(name);
  }

  listVolumes(labels: Record<string, string>): Promise<VolumeInfo[]> {
    return this.volumes.list(labels);
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    requireImageReference(spec.image, `create container "${spec.name}"`);
    if (spec.network === 'container' && spec.ports.length > 0) {
      throw new RuntimeError('invalid', `create container "${spec.name}"`, "a container that joins another container's network cannot map ports of its own");
    }
    if (spec.cgroupParent && (await this.cgroupDriver()) !== 'cgroupfs') {
      throw new RuntimeError('invalid', `create container "${spec.name}"`, "task-level cpu and memory limits need dockerd's cgroupfs cgroup driver; this dockerd uses systemd");
    }
    const exposed: Record<string, object> = {};
    const bindings: Record<string, { HostIp: string; HostPort: string }[]> = {};
    for (const port of spec.ports) {
      const key = `${port.containerPort}/${port.protocol}`;
      exposed[key] = {};
      (bindings[key] ??= []).push({ HostIp: port.hostIp, HostPort: port.hostPort === 0 ? '' : String(port.hostPort) });
    }
    // berth gives the /etc files of a container of network "none" that sets no entries of its own,
    // and of one joining a pause container; Docker has none for either. A pause container needs none.
    const berthFilesForNone = spec.network === 'none' && !spec.networkHolder && !needsDockersNetworkFiles(spec);
    const withoutSandbox = spec.network === 'none' && (spec.networkHolder || berthFilesForNone);
    const etcFiles =
      spec.network === 'container' || berthFilesForNone
        ? await this.sharedNetworkFiles.mounts().catch((error: unknown) => {
            throw new RuntimeError('internal', `create container "${spec.name}"`, `cannot write its /etc/hosts and /etc/resolv.conf: ${error instanceof Error ? error.message : String(error)}`);
          })
        : [];
    const created = await this.call(`create container "${spec.name}"`, (abortSignal) =>
      this.docker.createContainer({
        abortSignal,
        name: spec.name,
        // No libnetwork sandbox: runc alone makes the namespace (with lo up), and dockerd does not
        // run itself again at each start (a prestart hook) to hand the namespace to a sandbox.
        NetworkDisabled: withoutSandbox ? true : undefined,
        Image: withDefaultTag(spec.image),
        Cmd: spec.command,
        Entrypoint: spec.entrypoint,
        Env: Object.entries(spec.env).map(([key, value]) => `${key}=${value}`),
        WorkingDir: spec.workingDir,
        User: spec.user,
        Labels: spec.labels,
        ExposedPorts: exposed,
        Hostname: spec.hostname,
        StopSignal: spec.stopSignal,
        // No attach: an open stdin nobody writes to, and a terminal whose output only the log driver reads.
        OpenStdin: spec.openStdin,
        StdinOnce: false,
        Tty: spec.tty,
        HostConfig: {
          LogConfig: spec.logConfiguration
            ? { Type: spec.logConfiguration.driver, Config: spec.logConfiguration.options }
            : this.options.logRotation
              ? { Type: 'json-file', Config: { 'max-size': String(this.options.logRotation.maxFileBytes), 'max-file': String(this.options.logRotation.maxFiles) } }
              : undefined,
          NetworkMode: networkModeOf(spec),
          PortBindings: bindings,
          CpuShares: spec.cpuShares || undefined,
          Memory: spec.memoryBytes || undefined,
          MemoryReservation: spec.memoryReservationBytes || undefined,
          PidsLimit: spec.pidsLimit || undefined,
          CgroupParent: spec.cgroupParent,
          // Mounts (not Binds): a missing host path is an error, not a directory Docker creates.
          // Volumes get a copy of the image's files at their path while they are empty (Docker's default).
          Mounts: mountsOf(spec, etcFiles),
          DeviceRequests: spec.gpuIds && spec.gpuIds.length > 0 ? [{ Driver: 'nvidia', DeviceIDs: spec.gpuIds, Capabilities: [['gpu']] }] : undefined,
          ...optionSettings(spec),
        },
      } as Docker.ContainerCreateOptions),
    );
    return created.id;
  }

  /** Creating the container did everything a start can do before the process runs. */
  async prepareStart(): Promise<void> {}

  async startContainer(id: string): Promise<void> {
    try {
      await this.call(`start container ${id}`, (abortSignal) => this.docker.getContainer(id).start({ abortSignal }));
    } catch (error) {
      // 304: already started.
      if (!(error instanceof RuntimeError && (error.cause as { statusCode?: number })?.statusCode === 304)) throw error;
    }
  }

  async stopContainer(id: string, timeoutMs: number): Promise<void> {
    const seconds = Math.max(0, Math.ceil(timeoutMs / 1000));
    try {
      await this.call(`stop container ${id}`, (abortSignal) => this.docker.getContainer(id).stop({ t: seconds, abortSignal }), timeoutMs + this.options.callTimeoutMs);
    } catch (error) {
      const status = (error instanceof RuntimeError ? (error.cause as { statusCode?: number }) : undefined)?.statusCode;
      if (status !== 304) throw error; // 304: not running
    }
  }

  async removeContainer(id: string): Promise<void> {
    this.terminals.delete(id);
    this.statsFromCgroup.delete(id);
    try {
      await this.call(`remove container ${id}`, (abortSignal) => this.docker.getContainer(id).remove({ force: true, v: true, abortSignal }));
    } catch (error) {
      if (error instanceof RuntimeError && error.kind === 'not-found') return;
      if (error instanceof RuntimeError && error.kind === 'conflict' && error.detail.includes('already in progress')) return;
      throw error;
    }
  }

  async inspectContainer(idOrName: string): Promise<ContainerInfo> {
    const c = await this.call(`inspect container ${idOrName}`, (abortSignal) => this.docker.getContainer(idOrName).inspect({ abortSignal }));
    const state = toState(c.State?.Status);
    const portBindings: PortBinding[] = [];
    for (const [key, hostBindings] of Object.entries(c.NetworkSettings?.Ports ?? {})) {
      const [port, protocol] = key.split('/');
      for (const binding of hostBindings ?? []) {
        portBindings.push({
          containerPort: Number(port),
          hostPort: Number(binding.HostPort),
          protocol: protocol === 'udp' ? 'udp' : 'tcp',
          hostIp: binding.HostIp,
        });
      }
    }
    const exited = state === 'exited' || state === 'dead';
    return {
      id: c.Id,
      name: c.Name.replace(/^\//, ''),
      image: c.Config?.Image ?? '',
      labels: c.Config?.Labels ?? {},
      state,
      exitCode: exited ? c.State.ExitCode : undefined,
      oomKilled: Boolean(c.State?.OOMKilled),
      error: c.State?.Error || undefined,
      createdAt: parseTime(c.Created),
      startedAt: parseTime(c.State?.StartedAt === NO_TIME ? undefined : c.State?.StartedAt),
      finishedAt: exited ? parseTime(c.State?.FinishedAt) : undefined,
      portBindings,
      pid: state === 'running' && c.State?.Pid ? c.State.Pid : undefined,
    };
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    const label = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
    const list = await this.call('list containers', (abortSignal) => this.docker.listContainers({ all: true, filters: { label }, abortSignal }));
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names?.[0] ?? '').replace(/^\//, ''),
      image: c.Image,
      labels: c.Labels ?? {},
      state: toState(c.State),
      oomKilled: false,
      createdAt: new Date(c.Created * 1000),
      portBindings: (c.Ports ?? []).filter((p) => p.PublicPort).map((p) => ({ containerPort: p.PrivatePort, hostPort: p.PublicPort, protocol: p.Type === 'udp' ? 'udp' : 'tcp', hostIp: p.IP ?? '' })),
    }));
  }

  async exec(id: string, command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const limit = options.maxOutputBytes ?? DEFAULT_EXEC_OUTPUT;
    const operation = `exec in container ${id}`;
    let started: Docker.Exec | undefined;
    try {
      return await withTimeout(
        operation,
        options.timeoutMs ?? this.options.callTimeoutMs,
        async (abortSignal) => {
          try {
            const exec = await this.docker.getContainer(id).exec({ Cmd: command, AttachStdout: true, AttachStderr: true, abortSignal });
            started = exec;
            const stream = (await exec.start({ hijack: true, stdin: false, abortSignal })) as Readable;
            // The hijacked connection is ours to close, whatever happens (a timeout included).
            const destroy = () => stream.destroy();
            abortSignal.addEventListener('abort', destroy, { once: true });
            try {
              const chunks: Buffer[] = [];
              let size = 0;
              const sink = new PassThrough();
              sink.on('data', (chunk: Buffer) => {
                if (size < limit) chunks.push(chunk.subarray(0, limit - size));
                size += chunk.length;
              });
              this.docker.modem.demuxStream(stream, sink, sink);
              await new Promise<void>((resolve, reject) => {
                stream.on('end', resolve);
                stream.on('close', resolve);
                stream.on('error', reject);
              });
              if (abortSignal.aborted) throw abortSignal.reason;
              const result = await exec.inspect({ abortSignal });
              return { exitCode: result.ExitCode ?? -1, output: Buffer.concat(chunks) };
            } finally {
              abortSignal.removeEventListener('abort', destroy);
              destroy();
            }
          } catch (error) {
            throw toRuntimeError(operation, error);
          }
        },
        options.signal,
      );
    } catch (error) {
      // Docker has no way to end an exec: a command that overran or was cancelled is killed here,
      // with everything it started, so that it does not keep running in the container.
      if (started) await this.killExec(id, started);
      throw error;
    }
  }

  async openSession(id: string, command: string[], options: SessionProcessOptions): Promise<SessionProcess> {
    const operation = `exec in container ${id}`;
    const container = await this.call(operation, (abortSignal) => this.docker.getContainer(id).inspect({ abortSignal }));
    if (!container.State.Running || !container.State.Pid) throw new RuntimeError('conflict', operation, 'the container is not running');
    await checkProcessIdentity(container.State.Pid, operation, options.user, options.workingDir);
    return openDockerSession(this.docker, { call: (what, fn) => this.call(what, fn), killExec: (containerId, exec) => this.killExec(containerId, exec) }, container.Id, command, options);
  }

  async attach(id: string, options: { stdin: boolean }): Promise<ContainerAttachment> {
    const operation = `attach to container ${id}`;
    const container = await this.call(operation, (abortSignal) => this.docker.getContainer(id).inspect({ abortSignal }));
    if (!container.State.Running) throw new RuntimeError('conflict', operation, 'the container is not running');
    if (options.stdin && !container.Config.OpenStdin) throw new RuntimeError('invalid', operation, 'the container was not started with an open standard input (interactive)');
    return attachDockerContainer(
      this.docker,
      { call: (what, fn) => this.call(what, fn), killExec: (containerId, exec) => this.killExec(containerId, exec) },
      container.Id,
      container.Config.Tty,
      options.stdin,
    );
  }

  async endLeftoverExecs(labels: Record<string, string>): Promise<number> {
    let ended = 0;
    for (const listed of await this.listContainers(labels)) {
      if (listed.state !== 'running') continue;
      const container = await this.call('inspect container', (abortSignal) => this.docker.getContainer(listed.id).inspect({ abortSignal })).catch(() => undefined);
      for (const execId of ((container as { ExecIDs?: string[] | null } | undefined)?.ExecIDs ?? []).slice(0, MAX_EXECS_LOOKED_AT)) {
        const info = await this.call('inspect exec', (abortSignal) => this.docker.getExec(execId).inspect({ abortSignal })).catch(() => undefined);
        if (!info?.Running || !info.Pid || !startedBeforeThisProcess(info.Pid)) continue;
        if ((await killProcessTree(info.Pid, container?.State?.Pid ?? 0)) > 0) ended++;
      }
    }
    return ended;
  }

  private async killExec(containerId: string, exec: Docker.Exec): Promise<void> {
    const info = await runningExec((what, fn) => this.call(what, fn), exec).catch(() => undefined);
    if (!info?.Running || !info.Pid) return;
    const container = await this.call('inspect container', (abortSignal) => this.docker.getContainer(containerId).inspect({ abortSignal })).catch(() => undefined);
    await killProcessTree(info.Pid, container?.State?.Pid ?? 0);
  }

  async bridgeGateway(): Promise<string | undefined> {
    const network = (await this.call('inspect the bridge network', (abortSignal) =>
      (this.docker.getNetwork('bridge') as unknown as { inspect(o: object): Promise<unknown> }).inspect({ abortSignal }),
    )) as { IPAM?: { Config?: { Gateway?: string }[] } };
    return network.IPAM?.Config?.find((c) => c.Gateway)?.Gateway;
  }

  async logs(id: string, options: LogOptions): Promise<AsyncIterable<LogLine>> {
    const streams = new Set(options.streams ?? ['stdout', 'stderr']);
    const query = {
      follow: options.follow,
      stdout: streams.has('stdout'),
      stderr: streams.has('stderr'),
      timestamps: true,
      tail: options.tail === undefined ? 'all' : String(options.tail),
      since: options.since ? dockerSince(options.since) : 0,
    };
    const began = new Date();
    const tty = await this.hasTerminal(id);
    // Always as a stream (dockerode's logs() would read a whole log into memory without follow).
    const stream = await this.call(
      `read the logs of container ${id}`,
      (abortSignal) =>
        new Promise<Readable>((resolve, reject) => {
          const dial = { path: `/containers/${id}/logs?`, method: 'GET', abortSignal, isStream: true, statusCodes: { 200: true, 404: 'no such container', 500: 'server error' }, options: query };
          (this.docker.modem as unknown as { dial(o: object, cb: (error: unknown, data: unknown) => void): void }).dial(dial, (error, data) => (error ? reject(error) : resolve(data as Readable)));
        }),
    );
    const close = () => stream.destroy();
    options.signal.addEventListener('abort', close, { once: true });
    // Nothing given yet: only lines written since the follow began are missing.
    const catchUp = (since: Date | undefined) => this.logs(id, { ...options, follow: false, tail: undefined, since: since ?? began });
    return (async function* () {
      // The time of the last line and how many lines had it: a follow can end, at the container's
      // exit, before Docker sent the last lines written (seen with a last line without newline).
      // Those are read again once it ended, skipping the lines already given.
      let lastTime: Date | undefined;
      let sameTime = 0;
      try {
        for await (const line of tty ? dockerTerminalLogLines(stream) : dockerLogLines(stream)) {
          if (lastTime?.getTime() === line.time.getTime()) sameTime++;
          else [lastTime, sameTime] = [line.time, 1];
          yield line;
        }
      } catch (error) {
        if (!options.signal.aborted) throw toRuntimeError(`read the logs of container ${id}`, error);
      } finally {
        options.signal.removeEventListener('abort', close);
        close();
      }
      if (options.signal.aborted || !options.follow) return;
      let skip = lastTime ? sameTime : 0;
      for await (const line of await catchUp(lastTime)) {
        if (lastTime && line.time.getTime() < lastTime.getTime()) continue;
        if (skip > 0) {
          skip--;
          continue;
        }
        yield line;
      }
    })();
  }

  /** Whether the container has a terminal (its logs are then one raw stream, not multiplexed); asked once per container. */
  private async hasTerminal(id: string): Promise<boolean> {
    let tty = this.terminals.get(id);
    if (tty === undefined) {
      const c = await this.call(`inspect container ${id}`, (abortSignal) => this.docker.getContainer(id).inspect({ abortSignal }));
      tty = c.Config.Tty === true;
      this.terminals.set(id, tty);
    }
    return tty;
  }

  async stats(id: string): Promise<ContainerStatsSample> {
    const operation = `read the resource use of container ${id}`;
    // Docker answers nothing for a container in the namespace of a pause container made without
    // its network sandbox (networkHolder: no sandbox to count the traffic of), and logs an error
    // each time it is asked: once it has, the container's cgroup is read without asking again.
    const known = this.statsFromCgroup.get(id);
    if (known) {
      const sample = (await cgroupMembership(known.pid)) === known.membership ? await cgroupSample(known.pid, known.membership) : undefined;
      if (sample) return sample;
      this.statsFromCgroup.delete(id); // the process is gone (its pid may be another's now)
    }
    // one-shot: the current counters at once, without waiting a second for a previous sample.
    const stats = (await this.call(operation, (abortSignal) =>
      this.docker.getContainer(id).stats({ stream: false, 'one-shot': true, abortSignal } as unknown as { stream: false }),
    )) as unknown as DockerStats;
    if (!stats.read || stats.read.startsWith('0001-01-01') || !stats.pids_stats?.current) {
      const pid = (await this.inspectContainer(id)).pid;
      const membership = pid ? await cgroupMembership(pid) : undefined;
      const sample = pid && membership ? await cgroupSample(pid, membership) : undefined;
      if (!pid || !membership || !sample) throw new RuntimeError('conflict', operation, 'the container is not running');
      if (this.statsFromCgroup.size >= MAX_STATS_FROM_CGROUP) this.statsFromCgroup.clear();
      this.statsFromCgroup.set(id, { pid, membership });
      return sample;
    }
    const memory = stats.memory_stats ?? {};
    // What `docker stats` shows: the usage without the page cache the kernel can drop.
    const inactiveFile = memory.stats?.total_inactive_file ?? memory.stats?.inactive_file ?? 0;
    let network: ContainerStatsSample['network'] = { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 };
    if (stats.networks) {
      for (const counters of Object.values(stats.networks)) {
        network.rxBytes += counters.rx_bytes;
        network.txBytes += counters.tx_bytes;
        network.rxPackets += counters.rx_packets;
        network.txPackets += counters.tx_packets;
      }
    } else {
      // A container in another's network namespace: Docker reports no networks; read the namespace's.
      const pid = (await this.inspectContainer(id)).pid;
      if (pid) network = await namespaceTraffic(pid);
    }
    return {
      time: new Date(stats.read),
      cpuUsageNanos: stats.cpu_stats?.cpu_usage?.total_usage ?? 0,
      memoryUsageBytes: Math.max(0, (memory.usage ?? 0) - inactiveFile),
      memoryLimitBytes: Math.min(memory.limit || totalmem(), totalmem()),
      network,
      pids: stats.pids_stats.current,
    };
  }

  async events(labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>> {
    const label = Object.entries(labels).map(([key, value]) => `${key}=${value}`);
    let stream: Readable;
    try {
      stream = (await withTimeout('watch docker events', this.options.callTimeoutMs, () => this.docker.getEvents({ filters: { type: ['container'], label }, abortSignal: signal }))) as Readable;
    } catch (error) {
      throw toRuntimeError('watch docker events', error);
    }
    return (async function* () {
      const onAbort = () => stream.destroy();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        yield* readDockerEvents(stream);
      } catch (error) {
        if (signal.aborted) return;
        throw toRuntimeError('watch docker events', error);
      } finally {
        signal.removeEventListener('abort', onAbort);
        stream.destroy();
      }
      if (!signal.aborted) throw new RuntimeError('unavailable', 'watch docker events', 'the event stream ended');
    })();
  }
}

/** HostConfig settings of the container options beyond the core (see ContainerSpec). */
function optionSettings(spec: ContainerSpec): Record<string, unknown> {
  const privileged = spec.privileged ? privilegedSettings() : {};
  const options: Record<string, unknown> = {
    // The exact set: Docker's defaults dropped, the computed set added.
    ...(spec.capabilities && !spec.privileged ? { CapDrop: ['ALL'], CapAdd: spec.capabilities } : {}),
    Init: spec.init,
    ShmSize: spec.shmSizeBytes,
    Tmpfs: spec.tmpfs ? Object.fromEntries(spec.tmpfs.map((t) => [t.containerPath, [...t.options, `size=${t.sizeBytes}`].join(',')])) : undefined,
    Ulimits: spec.ulimits?.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })),
    ReadonlyRootfs: spec.readonlyRootfs,
    ExtraHosts: spec.extraHosts?.map((h) => `${h.hostname}:${h.ipAddress}`),
    Dns: spec.dnsServers,
    DnsSearch: spec.dnsSearchDomains,
    Devices: spec.devices?.map((d) => ({ PathOnHost: d.hostPath, PathInContainer: d.containerPath, CgroupPermissions: d.access })),
    // Docker's MemorySwap is memory and swap together.
    MemorySwap: spec.swapBytes !== undefined && spec.memoryBytes > 0 ? spec.memoryBytes + spec.swapBytes : undefined,
    MemorySwappiness: spec.swappiness,
    Sysctls: spec.sysctls,
    Links: spec.links?.map((l) => `${l.runtimeName}:${l.alias}`),
    PidMode: typeof spec.pidNamespace === 'object' ? `container:${spec.pidNamespace.containerId}` : spec.pidNamespace,
    IpcMode: typeof spec.ipcNamespace === 'object' ? `container:${spec.ipcNamespace.containerId}` : spec.ipcNamespace,
  };
  const security = [...((privileged.SecurityOpt as string[] | undefined) ?? []), ...securityOptions(spec)];
  return { ...options, ...privileged, SecurityOpt: security.length > 0 ? security : undefined };
}

function securityOptions(spec: ContainerSpec): string[] {
  return [...(spec.noNewPrivileges ? ['no-new-privileges'] : []), ...(spec.apparmorProfile ? [`apparmor=${spec.apparmorProfile}`] : []), ...(spec.seccompUnconfined ? ['seccomp=unconfined'] : [])];
}

/** A stats sample of a process's cgroup (`membership`) and network namespace; undefined when the cgroup is gone. */
async function cgroupSample(pid: number, membership: string): Promise<ContainerStatsSample | undefined> {
  const usage = await cgroupUsage(membership, totalmem());
  return usage && { ...usage, time: new Date(), network: await namespaceTraffic(pid) };
}

/** The spec's mounts, then each of `etcFiles` whose path the spec mounts nothing at (a mount of its own wins, as over Docker's files). */
function mountsOf(spec: ContainerSpec, etcFiles: { Target: string }[]): object[] | undefined {
  const mounts: { Target: string }[] = [
    ...(spec.mounts ?? []).map((m) => ({ Type: 'bind', Source: m.hostPath, Target: m.containerPath, ReadOnly: m.readOnly })),
    ...(spec.volumeMounts ?? []).map((m) => ({ Type: 'volume', Source: m.volume, Target: m.containerPath, ReadOnly: m.readOnly })),
  ];
  const taken = new Set([...mounts.map((m) => m.Target), ...(spec.tmpfs ?? []).map((t) => t.containerPath)].map((path) => posix.normalize(path).replace(/(.)\/+$/, '$1')));
  mounts.push(...etcFiles.filter((f) => !taken.has(f.Target)));
  return mounts.length > 0 ? mounts : undefined;
}
