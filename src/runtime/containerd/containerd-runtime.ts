// Longer than most files on purpose: the whole runtime contract for containerd. The parts that
// stand alone (pull, content store, OCI spec, events, cgroup metrics, logs, users, leases) are files
// of their own; what stays is each contract method as its short sequence of containerd calls.

import { createHash, randomBytes } from 'node:crypto';
import { lstat, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PACKAGE_ROOT } from '../../package-root.js';
import { namespaceTraffic } from '../net-dev.js';
import { LOG_FILE_NAME, readLogFile, readOutput } from './log-file.js';
import { constants as os, totalmem } from 'node:os';
import type { Container } from '../../gen/containerd/services/containers/v1/containers.js';
import { Process, Status } from '../../gen/containerd/types/task.js';
import type { ContainerRuntime } from '../container-runtime.js';
import { isRuntimeError, RuntimeError } from '../errors.js';
import { parseImageName } from '../oci/image-name.js';
import { killProcessTree } from '../process-tree.js';
import { requireImageReference } from '../image-reference.js';
import { LEASE_OWNER_LABEL, leaseLabels, ownerAlive } from './lease-owner.js';
import { RegistryClient } from '../oci/registry-client.js';
import type {
  ContainerAttachment,
  ContainerInfo,
  ContainerLogConfiguration,
  ContainerSpec,
  ContainerState,
  ContainerStatsSample,
  ExecOptions,
  ExecResult,
  ImageInfo,
  LogLine,
  LogOptions,
  LogRotation,
  PullOptions,
  RuntimeEvent,
  SessionProcess,
  SessionProcessOptions,
  RuntimeVersion,
  RegistryAuth,
  VolumeInfo,
  VolumeSpec,
} from '../types.js';
import { withTimeout } from '../with-timeout.js';
import { CHANGE_DEADLINE_MS, ChangesUnderWay } from './changes-under-way.js';
import { RunningTasks } from './running-tasks.js';
import { decodeCgroupMetrics, oomKillsIn } from './cgroup-metrics.js';
import { ContainerdClient, containerdError } from './containerd-client.js';
import { runtimeEventsOf, type EventEnvelope } from './containerd-events.js';
import { ImagePuller, SNAPSHOTTER } from './image-puller.js';
import { ImageStore, type LocalImage } from './image-store.js';
import { parseSpec, runtimeSpec, specJson } from './oci-spec.js';
import { writerLogOptions, type WriterLogOptions } from './log-options.js';
import { containerVolumeBinds, LocalVolumes } from './local-volumes.js';
import { deviceNode } from './devices.js';
import { hostsFile, resolvConf } from '../etc-files.js';
import { DEFAULT_RUNC_ROOT, isBundleInUse, isStaleRuncState, removeStaleRuncState } from './stale-runc-state.js';
import { readFromMounts, resolveUser } from './user.js';
import { checkProcessIdentity } from '../process-root.js';
import { endLeftoverExecs, execIdOf, newExecDir, prepareExecDir } from './exec-dirs.js';
import { openContainerdSession } from './exec-session.js';
import { attachContainerdContainer, ensureStdinFifo } from './attachment.js';

/** A task made (or found) for a container's start: whether it runs already, and its process. */
interface TaskCreated {
  state: 'created' | 'running';
  pid: number;
}

export interface ContainerdRuntimeOptions {
  socketPath: string;
  /** containerd namespace of every object berth makes. */
  namespace: string;
  callTimeoutMs: number;
  pullTimeoutMs: number;
  /** Where containers' log files, hosts files and exec output live. */
  stateDir: string;
  /** Registries spoken to over plain HTTP (loopback registries always are). */
  insecureRegistries: string[];
  /** The program the shim runs to write containers' logs; berth's libexec/berth-log-writer by default. */
  logWriterPath?: string;
  /** runc's state root of the runc v2 shim (without the namespace); /run/containerd/runc by default. */
  runcRoot?: string;
  /** Containers' log files are rotated by this (by the log writer); unbounded when unset. */
  logRotation?: LogRotation;
  /** The AppArmor profile unprivileged containers run under (see chooseAppArmorProfile); none when unset. */
  apparmorProfile?: string;
  /** A static init for containers that ask for one (Debian's tini-static, which Docker's docker-init is); DEFAULT_INIT_BINARY when unset. */
  initBinary?: string;
}

/** Debian's static tini: the binary Docker's docker-init links to. */
export const DEFAULT_INIT_BINARY = '/usr/bin/tini-static';

const SPEC_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Spec';
const PROCESS_TYPE = 'types.containerd.io/opencontainers/runtime-spec/1/Process';
const RUNTIME = 'io.containerd.runc.v2';
/** Labels the adapter adds for itself. */
const NAME_LABEL = 'berth.runtime-name';
const STOP_SIGNAL_LABEL = 'berth.stop-signal';
/** Where the container's log file is (so any adapter instance, whatever its state dir, finds it). */
const LOG_FILE_LABEL = 'berth.log-file';
/** What berth's log writer does besides its local copy (WriterLogOptions, JSON), when the spec asked for a log driver. */
const LOG_OPTIONS_LABEL = 'berth.log-options';
/** Set on a container with a terminal (Tasks.Create must say so too). */
const TERMINAL_LABEL = 'berth.terminal';
/** Set on a container with an open stdin (interactive); with a terminal, its task gets a stdin FIFO. */
const STDIN_LABEL = 'berth.stdin';
/** The stdin FIFO of an interactive container with a terminal, in its directory. */
const STDIN_FIFO_NAME = 'stdin';
/** The container's cgroup, when it is not containerd's default `/<namespace>/<id>`. */
const CGROUP_LABEL = 'berth.cgroup';
const DEFAULT_EXEC_OUTPUT = 64 * 1024;
/** A listing asks for the tasks it does not know running one by one up to this many, else through one Tasks.List. */
const TASKS_ASKED_ONE_BY_ONE = 16;

/**
 * The size an exec's output file may reach: enough records for `limit` bytes of output even in
 * one-byte lines (each record adds a time and a stream, about 40 bytes), so a command that writes
 * without end fills no disk.
 */
const execFileCap = (limit: number) => 48 * limit + 64 * 1024;
const ID_PATTERN = /^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$/;

/** containerd's id for a container name: the name itself when containerd accepts it, else a hash of it. */
export function containerIdFor(name: string): string {
  return ID_PATTERN.test(name) && name.length <= 76 ? name : `berth-${createHash('sha256').update(name).digest('hex').slice(0, 40)}`;
}

function signalNumber(name: string | undefined): number {
  if (!name) return os.signals.SIGTERM;
  if (/^\d+$/.test(name)) return Number(name);
  const key = (name.startsWith('SIG') ? name : `SIG${name}`) as keyof typeof os.signals;
  return os.signals[key] ?? os.signals.SIGTERM;
}

function stateOf(process: Process | undefined): ContainerState {
  switch (process?.status) {
    case undefined:
      return 'created';
    case Status.CREATED:
      return 'created';
    case Status.RUNNING:
      return 'running';
    case Status.STOPPED:
      return 'exited';
    case Status.PAUSED:
    case Status.PAUSING:
      return 'paused';
    default:
      return 'unknown';
  }
}

/** A filter expression of containerd matching every label (AND). */
/** The writer's query arguments for a fluentd destination (Docker names the container "/<name>"). */
function fluentdArguments(fluentd: WriterLogOptions['fluentd'], name: string): string {
  if (!fluentd) return '';
  let query = `&fluentd-address=${encodeURIComponent(fluentd.address)}&container-name=${encodeURIComponent(`/${name}`)}`;
  if (fluentd.tag) query += `&tag=${encodeURIComponent(fluentd.tag)}`;
  if (fluentd.bufferLimitBytes) query += `&fluentd-buffer-limit=${fluentd.bufferLimitBytes}`;
  if (fluentd.subSecondPrecision) query += '&fluentd-sub-second-precision=true';
  return query;
}

function labelFilter(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([key, value]) => `labels.${JSON.stringify(key)}==${JSON.stringify(value)}`)
    .join(',');
}

/**
 * The ContainerRuntime contract on containerd's native gRPC API. Images are pulled by berth
 * (containerd 1.6 has no server-side pull); containers get an OCI spec written by berth; each
 * container's process is a containerd task whose output goes to log files. Networking is "none",
 * "host" or the namespace of another container: bridges and port mappings come from the engine's CNI.
 */
export class ContainerdRuntime implements ContainerRuntime {
  readonly name = 'containerd' as const;
  /** containerd has no bridge of its own: the engine provides bridge mode through CNI. */
  readonly hasBridgeNetwork = false;
  readonly joinsNetworkNamespaces = true;
  // The shim gives a process whose output goes to a logging binary (berth's log writer) no stdin.
  readonly opensStdinWithoutTerminal = false;

  logConfigurationProblem(config: ContainerLogConfiguration): { option?: string; problem: string } | undefined {
    const options = writerLogOptions(config);
    return 'problem' in options ? options : undefined;
  }

  /** What the log writers of the namespace's forwarding containers counted in `<log>.forwarding`. */
  async logMessagesDropped(): Promise<number> {
    const c = this.client;
    const { containers } = await c.call('list containers', c.containers, c.containers.list, { filters: [`labels."${LOG_OPTIONS_LABEL}"`] });
    let dropped = 0;
    for (const container of containers) {
      const text = await readFile(`${this.logFileOf(container)}.forwarding`, 'utf8').catch(() => '');
      dropped += Number(/^dropped (\d+)$/m.exec(text)?.[1] ?? 0);
    }
    return dropped;
  }
  private readonly client: ContainerdClient;
  private readonly puller: ImagePuller;
  private readonly registry: RegistryClient;
  /** Runs once per adapter, at the first ping that reaches containerd. */
  private leaseSweep: Promise<void> | undefined;
  private readonly images: ImageStore;
  /** Containers seen killed by the kernel for memory (from /tasks/oom events). */
  private readonly oomKilled = new Set<string>();
  private readonly startedAt = new Map<string, Date>();
  /** The pid of each container's process, from the create of its task (or the task found created). */
  private readonly processIds = new Map<string, number>();
  /**
   * Creates and starts under way, by container (`container:`, `task:` and `start:` and its id): a
   * retry joins one instead of racing it, a stop or removal waits for them, and an exit reported
   * while a task is created waits for the new pid.
   */
  private readonly changes: ChangesUnderWay;
  private readonly labelsCache = new Map<string, Record<string, string>>();
  /** The tasks last seen running, so a listing asks containerd only about those whose process changed. */
  private readonly runningTasks: RunningTasks;

  private readonly logWriter: string;
  private readonly volumes: LocalVolumes;

  constructor(private readonly options: ContainerdRuntimeOptions) {
    this.volumes = new LocalVolumes(join(options.stateDir, 'volumes'), (dataDir) => this.mountedByAContainer(dataDir));
    this.logWriter = options.logWriterPath ?? join(PACKAGE_ROOT ?? '.', 'libexec', 'berth-log-writer');
    this.client = new ContainerdClient(options.socketPath, options.namespace, options.callTimeoutMs);
    this.changes = new ChangesUnderWay(options.callTimeoutMs);
    this.runningTasks = new RunningTasks({ file: join(options.stateDir, 'running-tasks.json') });
    this.registry = new RegistryClient({ insecureRegistries: options.insecureRegistries, requestTimeoutMs: options.callTimeoutMs });
    this.puller = new ImagePuller(this.client, this.registry, options.callTimeoutMs);
    this.images = new ImageStore(this.client, options.callTimeoutMs);
  }

  close(): void {
    this.runningTasks.close();
    this.client.close();
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

  /** Whether a container of the namespace bind-mounts `source`. */
  private async mountedByAContainer(source: string): Promise<boolean> {
    const c = this.client;
    const { containers } = await c.call('list containers', c.containers, c.containers.list, { filters: [] });
    return containers.some((container) => {
      const spec = parseSpec(Buffer.from(container.spec?.value ?? '{}').toString('utf8')) as { mounts?: { source?: string }[] };
      return (spec.mounts ?? []).some((m) => m.source === source);
    });
  }

  /**
   * Ends the leases of berth processes that are gone (killed in the middle of a pull or a create),
   * so that containerd collects what they protected now rather than when they expire.
   */
  private async endLeasesOfEndedProcesses(): Promise<void> {
    const c = this.client;
    const { leases } = await c.call('list leases', c.leases, c.leases.list, { filters: [`labels."${LEASE_OWNER_LABEL}"`] });
    for (const lease of leases) {
      const owner = lease.labels[LEASE_OWNER_LABEL];
      if (owner && !ownerAlive(owner)) await c.call('delete lease', c.leases, c.leases.delete, { id: lease.id, sync: true });
    }
  }

  async ping(): Promise<RuntimeVersion> {
    const c = this.client;
    const version = await c.call('ping containerd', c.version, c.version.version, {});
    this.leaseSweep ??= this.endLeasesOfEndedProcesses().catch(() => {
      this.leaseSweep = undefined; // tried again at the next ping
    });
    await this.leaseSweep;
    // containerd's API is released with the daemon: its version is the daemon's major.minor
    // (the revision is a commit, not an API version).
    const apiVersion = /^v?(\d+\.\d+)/.exec(version.version)?.[1] ?? version.version;
    return { name: 'containerd', version: version.version, apiVersion };
  }

  async pullImage(reference: string, options: PullOptions = {}): Promise<ImageInfo> {
    requireImageReference(reference, `pull image "${reference}"`);
    const name = parseImageName(reference);
    const operation = `pull image "${name.reference}"`;
    await withTimeout(operation, options.timeoutMs ?? this.options.pullTimeoutMs, (signal) => this.puller.pull(name, options.auth, options.onProgress, signal), options.signal);
    return this.inspectImage(reference);
  }

  async checkImageAccess(reference: string, auth: RegistryAuth | undefined, timeoutMs = this.options.callTimeoutMs): Promise<void> {
    requireImageReference(reference, `check access to image "${reference}"`);
    const name = parseImageName(reference);
    await withTimeout(`check access to image "${name.reference}"`, timeoutMs, (signal) => this.registry.resolve(name, auth, signal));
  }

  async inspectImage(reference: string): Promise<ImageInfo> {
    requireImageReference(reference, `inspect image "${reference}"`);
    const image = await this.images.get(parseImageName(reference));
    return { id: image.id, references: [image.name], sizeBytes: image.sizeBytes };
  }

  async removeImage(reference: string): Promise<void> {
    requireImageReference(reference, `remove image "${reference}"`);
    const name = parseImageName(reference).reference;
    const c = this.client;
    const users = await c.call('list containers', c.containers, c.containers.list, { filters: [`image==${JSON.stringify(name)}`] });
    if (users.containers.length > 0) throw new RuntimeError('conflict', `remove image "${name}"`, `used by container ${users.containers[0]!.id}`);
    await c.call(`remove image "${name}"`, c.images, c.images.delete, { name, sync: false }).catch((error: unknown) => {
      if (!isRuntimeError(error, 'not-found')) throw error;
    });
  }

  private containerDir(id: string): string {
    return join(this.options.stateDir, 'containers', id);
  }

  /** The stdout/stderr URI that has the shim hand a process's output to berth's log writer, into `file`. */
  /** The shim's output URI: berth's log writer, rotating a container's log when `rotation` is given. */
  private outputUri(file: string, rotation?: LogRotation, maxTotalBytes?: number, syslog?: WriterLogOptions['syslog']): string {
    let limits = rotation ? `&max-size=${rotation.maxFileBytes}&max-files=${rotation.maxFiles}` : '';
    if (maxTotalBytes !== undefined) limits += `&max-total=${maxTotalBytes}`;
    if (syslog) {
      limits += `&syslog-address=${encodeURIComponent(syslog.address)}&syslog-facility=${syslog.facility}`;
      if (syslog.tag) limits += `&tag=${encodeURIComponent(syslog.tag)}`;
      const tls = syslog.tls;
      if (tls?.caCert) limits += `&syslog-tls-ca-cert=${encodeURIComponent(tls.caCert)}`;
      if (tls?.cert) limits += `&syslog-tls-cert=${encodeURIComponent(tls.cert)}`;
      if (tls?.key) limits += `&syslog-tls-key=${encodeURIComponent(tls.key)}`;
      if (tls?.skipVerify) limits += '&syslog-tls-skip-verify=true';
    }
    return `binary://${encodeURI(this.logWriter)}?file=${encodeURIComponent(file)}${limits}`;
  }

  private logFileOf(container: Container): string {
    return container.labels[LOG_FILE_LABEL] ?? join(this.containerDir(container.id), LOG_FILE_NAME);
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const operation = `create container "${spec.name}"`;
    requireImageReference(spec.image, operation);
    const logOptions = spec.logConfiguration ? writerLogOptions(spec.logConfiguration) : undefined;
    if (logOptions && 'problem' in logOptions) throw new RuntimeError('invalid', operation, `log_configuration${logOptions.option ? ` option ${logOptions.option}` : ''}: ${logOptions.problem}`);
    if (spec.openStdin && !spec.tty)
      throw new RuntimeError('invalid', operation, 'an open standard input needs a terminal on containerd: the shim gives a process that logs through a log writer no stdin');
    if (spec.network === 'bridge' || (spec.network !== 'host' && spec.ports.length > 0)) {
      throw new RuntimeError('invalid', operation, 'containerd has no bridge or port mapping of its own: the engine provides them through CNI (network "container")');
    }
    if (spec.network === 'container' && !spec.networkContainer) throw new RuntimeError('invalid', operation, 'network "container" needs the namespace to join');
    if (spec.network === 'namespace' && !spec.networkNamespacePath?.startsWith('/'))
      throw new RuntimeError('invalid', operation, 'network "namespace" needs the absolute path of the namespace to join');
    if (spec.gpuIds && spec.gpuIds.length > 0) throw new RuntimeError('invalid', operation, 'GPUs are not supported on containerd yet');
    for (const m of spec.mounts ?? []) {
      if (
        !(await stat(m.hostPath).then(
          () => true,
          () => false,
        ))
      )
        throw new RuntimeError('invalid', operation, `the host path "${m.hostPath}" to mount at "${m.containerPath}" does not exist`);
    }
    const id = containerIdFor(spec.name);
    return this.changes.wait(
      operation,
      this.changes.joinOrStart(`container:${id}`, () => this.createInContainerd(spec, id, operation)),
    );
  }

  private async createInContainerd(spec: ContainerSpec, id: string, operation: string): Promise<string> {
    const c = this.client;
    const existing = await c.call('get container', c.containers, c.containers.get, { id }).catch((error: unknown) => (isRuntimeError(error, 'not-found') ? undefined : Promise.reject(error)));
    if (existing) throw new RuntimeError('already-exists', operation, `a container named "${spec.name}" exists`);
    const image = await this.images.get(parseImageName(spec.image));
    // A snapshot left by a create that did not finish is stale: start over.
    await c.call('remove snapshot', c.snapshots, c.snapshots.remove, { snapshotter: SNAPSHOTTER, key: id }, { timeoutMs: CHANGE_DEADLINE_MS }).catch(() => undefined);
    // Until the container refers to its snapshot, only a lease keeps the garbage collector off it.
    const lease = `berth-create-${randomBytes(6).toString('hex')}`;
    await c.call('create lease', c.leases, c.leases.create, { id: lease, labels: leaseLabels(3600_000) }, { timeoutMs: CHANGE_DEADLINE_MS });
    try {
      return await this.createUnderLease(spec, id, image, lease);
    } finally {
      await c.call('delete lease', c.leases, c.leases.delete, { id: lease, sync: false }).catch(() => undefined);
    }
  }

  private async createUnderLease(spec: ContainerSpec, id: string, image: LocalImage, lease: string): Promise<string> {
    const operation = `create container "${spec.name}"`;
    const c = this.client;
    const changing = { lease, timeoutMs: CHANGE_DEADLINE_MS };
    const prepare = () => c.call('prepare snapshot', c.snapshots, c.snapshots.prepare, { snapshotter: SNAPSHOTTER, key: id, parent: image.topChainId, labels: {} }, changing);
    const { mounts } = await prepare().catch(async (error: unknown) => {
      // A create of an agent that died may still have been under way in containerd: start over once.
      if (!isRuntimeError(error, 'already-exists')) throw error;
      await c.call('remove snapshot', c.snapshots, c.snapshots.remove, { snapshotter: SNAPSHOTTER, key: id }, changing);
      return prepare();
    });
    let creating = false;
    try {
      const user = await resolveUser(spec.user || image.config.config?.User, async () => {
        const [passwd, group] = await readFromMounts(mounts, ['etc/passwd', 'etc/group']);
        return { passwd, group };
      });
      const dir = this.containerDir(id);
      await mkdir(dir, { recursive: true });
      const hostname = spec.hostname ?? id.slice(0, 63);
      const files = { hosts: join(dir, 'hosts'), hostname: join(dir, 'hostname'), resolvConf: join(dir, 'resolv.conf') };
      // Bridge mode here is one namespace per task (CNI): linked containers listen on its loopback.
      const linked = (spec.links ?? []).map((l) => ({ hostname: l.alias, ipAddress: '127.0.0.1' }));
      await writeFile(files.hosts, hostsFile(hostname, [...(spec.extraHosts ?? []), ...linked]));
      await writeFile(files.hostname, `${hostname}\n`);
      await writeFile(files.resolvConf, resolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''), spec.dnsServers, spec.dnsSearchDomains, spec.network !== 'host'));
      const volumeBinds = await containerVolumeBinds(this.volumes, spec, image.config, mounts, dir, operation);
      const devices = await Promise.all((spec.devices ?? []).map((d) => deviceNode(d, operation)));
      const pidNamespace = await this.namespaceOf('pid', spec.pidNamespace, operation);
      const ipcNamespace = await this.namespaceOf('ipc', spec.ipcNamespace === 'shareable' || spec.ipcNamespace === 'none' ? undefined : spec.ipcNamespace, operation);
      const initBinary = this.options.initBinary ?? DEFAULT_INIT_BINARY;
      if (
        spec.init &&
        !(await stat(initBinary).then(
          (s) => s.isFile(),
          () => false,
        ))
      ) {
        throw new RuntimeError('invalid', operation, `an init process needs ${initBinary} (Debian's tini package; runtime.containerd.initBinary), which is not there`);
      }
      const oci = runtimeSpec({
        id,
        namespace: this.options.namespace,
        spec,
        image: image.config,
        user,
        files,
        netnsPath: spec.network === 'namespace' ? spec.networkNamespacePath : spec.networkContainer?.netnsPath,
        apparmorProfile: this.options.apparmorProfile,
        initBinary,
        volumeBinds,
        devices,
        pidNamespace,
        ipcNamespace,
      });
      const labels: Record<string, string> = { ...spec.labels, [NAME_LABEL]: spec.name, [LOG_FILE_LABEL]: join(dir, LOG_FILE_NAME) };
      const stopSignal = spec.stopSignal ?? image.config.config?.StopSignal;
      if (stopSignal) labels[STOP_SIGNAL_LABEL] = stopSignal;
      if (spec.tty) labels[TERMINAL_LABEL] = 'true';
      if (spec.openStdin) labels[STDIN_LABEL] = 'true';
      // Checked by createContainer: the writer's options, or none asked for.
      if (spec.logConfiguration) labels[LOG_OPTIONS_LABEL] = JSON.stringify(writerLogOptions(spec.logConfiguration));
      if (spec.cgroupParent) labels[CGROUP_LABEL] = (oci.linux as { cgroupsPath: string }).cgroupsPath;
      creating = true;
      await c.call(
        operation,
        c.containers,
        c.containers.create,
        {
          container: {
            id,
            labels,
            image: image.name,
            runtime: { name: RUNTIME, options: undefined },
            spec: { typeUrl: SPEC_TYPE, value: Buffer.from(specJson(oci)) },
            snapshotter: SNAPSHOTTER,
            snapshotKey: id,
            createdAt: undefined,
            updatedAt: undefined,
          },
        },
        changing,
      );
      this.labelsCache.set(id, labels);
      return id;
    } catch (error) {
      // The container another create made meanwhile (one of an agent process that died
      // mid-create, which containerd finished) uses the snapshot under this key: it stays.
      if (creating && isRuntimeError(error, 'already-exists')) throw error;
      await c.call('remove snapshot', c.snapshots, c.snapshots.remove, { snapshotter: SNAPSHOTTER, key: id }, changing).catch(() => undefined);
      throw error;
    }
  }

  private async getContainer(idOrName: string, operation: string): Promise<Container> {
    const c = this.client;
    for (const id of new Set([idOrName, containerIdFor(idOrName)])) {
      try {
        const { container } = await c.call(operation, c.containers, c.containers.get, { id });
        if (container) return container;
      } catch (error) {
        if (!isRuntimeError(error, 'not-found')) throw error;
      }
    }
    throw new RuntimeError('not-found', operation, `no container "${idOrName}"`);
  }

  /** A namespace to join as the spec gives it: "host", or the path of a running container's (its process's). */
  private async namespaceOf(type: 'pid' | 'ipc', target: 'host' | { containerId: string } | undefined, operation: string): Promise<'host' | string | undefined> {
    if (target === undefined || target === 'host') return target;
    const task = await this.getTask(target.containerId);
    if (!task?.pid || task.status !== Status.RUNNING) throw new RuntimeError('invalid', operation, `the ${type} namespace to join is container ${target.containerId}'s, which is not running`);
    return `/proc/${task.pid}/ns/${type}`;
  }

  private async getTask(id: string): Promise<Process | undefined> {
    const c = this.client;
    try {
      return (await c.call('get task', c.tasks, c.tasks.get, { containerId: id, execId: '' })).process;
    } catch (error) {
      if (isRuntimeError(error, 'not-found')) return undefined;
      throw error;
    }
  }

  /**
   * Waits for a process to exit. Registered before the call that may end it (kill, start), so its
   * failure is marked handled here: a caller that fails before awaiting it (the kill failed, the
   * agent closed the connection) leaves no unhandled rejection; one that awaits it still gets it.
   */
  private waitFor(id: string, execId = '', signal?: AbortSignal): Promise<{ exitStatus: number; exitedAt?: Date }> {
    const c = this.client;
    const exited = c.call('wait for task', c.tasks, c.tasks.wait, { containerId: id, execId }, { timeoutMs: Infinity, signal }).then((r) => ({ exitStatus: r.exitStatus, exitedAt: r.exitedAt }));
    exited.catch(() => undefined);
    return exited;
  }

  async prepareStart(idOrName: string): Promise<void> {
    const container = await this.getContainer(idOrName, `prepare the start of container ${idOrName}`);
    await this.changes.wait(`create task ${container.id}`, this.taskCreation(container));
  }

  async startContainer(idOrName: string): Promise<void> {
    const container = await this.getContainer(idOrName, `start container ${idOrName}`);
    const id = container.id;
    await this.changes.wait(
      `start container ${id}`,
      this.changes.joinOrStart(`start:${id}`, () => this.startTask(container)),
    );
  }

  private async startTask(container: Container): Promise<void> {
    const id = container.id;
    const c = this.client;
    for (let attempt = 1; ; attempt++) {
      if ((await this.taskCreation(container)) === 'running') return;
      // No Tasks.Wait is kept open for a running task: its exit reaches the engine as containerd's
      // /tasks/exit event (or, if the event stream broke, the relist that follows), and a call
      // open per running task would hold a stream in the agent (about 13 KiB) and in containerd.
      this.oomKilled.delete(id);
      const started = await c.call(`start task ${id}`, c.tasks, c.tasks.start, { containerId: id, execId: '' }, { timeoutMs: CHANGE_DEADLINE_MS }).then(
        () => true,
        async (error: unknown) => {
          const task = await this.getTask(id).catch(() => undefined);
          // A start of an agent process that died mid-start may have started it meanwhile
          // ("cannot start a running process"): then it runs, as asked.
          if (task?.status === Status.RUNNING) return true;
          // The task found created was an earlier create's (one of an agent process that died)
          // that failed after all, and containerd removed it: create it again, once.
          if (!task && isRuntimeError(error, 'not-found') && attempt === 1) return false;
          throw error;
        },
      );
      if (started) break;
    }
    this.startedAt.set(id, new Date());
    const pid = this.processIds.get(id);
    if (pid)
      this.runningTasks.remember({ containerId: id, cgroupPath: this.cgroupPathOf(id, container.labels), labels: container.labels, process: Process.fromPartial({ id, pid, status: Status.RUNNING }) });
  }

  /**
   * The create of the container's task under way, or one started now: makes sure the container
   * has a task that is created and not yet started (a restart deletes the old process's first), or
   * says that its task runs already. Remembers the task's pid.
   */
  private taskCreation(container: Container): Promise<'created' | 'running'> {
    const id = container.id;
    return this.changes.joinOrStart(`task:${id}`, async () => {
      const { state, pid } = await this.createOrFindTask(container);
      this.processIds.set(id, pid);
      return state;
    });
  }

  /** Fails with a timeout (which the engine retries) while a create or start of the container goes on. */
  private afterChanges(id: string, operation: string): Promise<void> {
    return this.changes.wait(operation, this.changes.settled(`container:${id}`, `task:${id}`, `start:${id}`));
  }

  private async createOrFindTask(container: Container): Promise<TaskCreated> {
    const id = container.id;
    const c = this.client;
    const task = await this.getTask(id);
    if (task?.status === Status.RUNNING) return { state: 'running', pid: task.pid };
    if (task?.status === Status.CREATED) return { state: 'created', pid: task.pid };
    // A restart: the old process's task goes, a new one is created.
    if (task) await c.call('delete task', c.tasks, c.tasks.delete, { containerId: id }, { timeoutMs: CHANGE_DEADLINE_MS });
    const { mounts } = await c.call('get mounts', c.snapshots, c.snapshots.mounts, { snapshotter: container.snapshotter || SNAPSHOTTER, key: container.snapshotKey || id });
    const logFile = this.logFileOf(container);
    await mkdir(dirname(logFile), { recursive: true });
    // The shim gives the process's stdout and stderr to berth's log writer, which stamps each line.
    const logOptions = JSON.parse(container.labels[LOG_OPTIONS_LABEL] ?? '{}') as WriterLogOptions;
    const output = this.outputUri(logFile, logOptions.rotation ?? this.options.logRotation, undefined, logOptions.syslog) + fluentdArguments(logOptions.fluentd, container.labels[NAME_LABEL] ?? id);
    const terminal = container.labels[TERMINAL_LABEL] === 'true';
    // The log writer's IO has no stdin to give; a terminal has: an interactive container's
    // terminal reads a FIFO that attached clients write.
    const stdinFifo = terminal && container.labels[STDIN_LABEL] === 'true' ? join(this.containerDir(id), STDIN_FIFO_NAME) : '';
    if (stdinFifo) await ensureStdinFifo(stdinFifo);
    const createTask = () =>
      this.createAfterEarlierCreate(id, () =>
        c.call(
          `create task ${id}`,
          c.tasks,
          c.tasks.create,
          {
            containerId: id,
            rootfs: mounts,
            stdin: stdinFifo,
            stdout: output,
            // With a terminal the shim copies the one pseudo-terminal to stdout.
            stderr: terminal ? '' : output,
            terminal,
          },
          { timeoutMs: CHANGE_DEADLINE_MS },
        ),
      );
    return createTask().catch(async (error: unknown) => {
      // runc state left by a create that was cut short, with no task containerd knows of:
      // remove it and create again, once.
      if (!isStaleRuncState(error) || (await this.getTask(id)) !== undefined) throw error;
      await removeStaleRuncState(this.options.runcRoot ?? DEFAULT_RUNC_ROOT, this.options.namespace, id, this.options.callTimeoutMs);
      return createTask();
    });
  }

  /**
   * Runs `create`; while it fails because another create of the same task is under way or done
   * (one of an agent process that died mid-create: its bundle is in use, or containerd says the
   * task exists before it lists it), waits for that one to end, up to the call timeout: takes the
   * task it made, or creates again once it failed.
   */
  private async createAfterEarlierCreate(id: string, create: () => Promise<{ pid: number }>): Promise<TaskCreated> {
    const giveUpAt = Date.now() + this.options.callTimeoutMs;
    for (let delayMs = 50; ; delayMs = Math.min(2 * delayMs, 1000)) {
      try {
        return { state: 'created', pid: (await create()).pid };
      } catch (error) {
        if (!isBundleInUse(error, this.options.namespace, id) && !isRuntimeError(error, 'already-exists')) throw error;
        if (Date.now() + delayMs > giveUpAt) {
          const detail = `an earlier create of this task has not ended in ${this.options.callTimeoutMs} ms: ${(error as RuntimeError).detail}`;
          throw new RuntimeError('internal', `create task ${id}`, detail, { cause: error });
        }
      }
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      // An error here (containerd's own while the earlier create ends) shows again in the next create.
      const earlier = await this.getTask(id).catch(() => undefined);
      if (earlier?.status === Status.RUNNING) return { state: 'running', pid: earlier.pid };
      if (earlier?.status === Status.CREATED) return { state: 'created', pid: earlier.pid };
    }
  }

  /**
   * Whether an exit containerd reports is of the container's current process. A create cut short
   * at its deadline can leave a process of the same container that containerd kills later (or that
   * the stale runc state's removal kills): its exit is not the exit of the process that runs now.
   * Without a pid on record (tasks of an earlier agent process), containerd's task says: with no
   * task at all, the process was never the container's (every task berth deletes, it deletes after
   * the exit was reported, or with the pid of the next on record); when containerd cannot say,
   * the exit is taken.
   */
  private async isCurrentProcess(id: string, pid: number): Promise<boolean> {
    // A process whose create has not ended has not started; the exit is of another one.
    const created = await this.changes.wait(`check the exit of ${id}`, this.changes.settled(`task:${id}`)).then(
      () => true,
      () => false,
    );
    if (!created) return false;
    const known = this.processIds.get(id);
    if (known !== undefined) return known === pid;
    try {
      return (await this.getTask(id))?.pid === pid;
    } catch {
      return true;
    }
  }

  async stopContainer(idOrName: string, timeoutMs: number): Promise<void> {
    const container = await this.getContainer(idOrName, `stop container ${idOrName}`);
    const id = container.id;
    await this.afterChanges(id, `stop container ${id}`);
    const task = await this.getTask(id);
    if (task?.status === Status.CREATED) {
      // A prepared start that is not to run: its process, created but never started, goes.
      await this.client.call('delete task', this.client.tasks, this.client.tasks.delete, { containerId: id }).catch((error: unknown) => {
        if (!isRuntimeError(error, 'not-found')) throw error;
      });
      return;
    }
    if (!task || (task.status !== Status.RUNNING && task.status !== Status.PAUSED)) return;
    const exited = this.waitFor(id);
    await this.kill(id, signalNumber(container.labels[STOP_SIGNAL_LABEL]));
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([exited.then(() => false), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), timeoutMs)))]).finally(() => clearTimeout(timer));
    if (timedOut) {
      await this.kill(id, os.signals.SIGKILL);
      await withTimeout(`stop container ${id}`, this.options.callTimeoutMs, () => exited);
    }
  }

  private async kill(id: string, signal: number): Promise<void> {
    const c = this.client;
    await c.call(`kill task ${id}`, c.tasks, c.tasks.kill, { containerId: id, execId: '', signal, all: false }).catch((error: unknown) => {
      // "process already finished"
      if (!isRuntimeError(error, 'not-found')) throw error;
    });
  }

  async removeContainer(idOrName: string): Promise<void> {
    let container: Container;
    try {
      container = await this.getContainer(idOrName, `remove container ${idOrName}`);
    } catch (error) {
      if (isRuntimeError(error, 'not-found')) return;
      throw error;
    }
    const id = container.id;
    const c = this.client;
    // A task a create under way makes after the removal would outlive its container.
    await this.afterChanges(id, `remove container ${id}`);
    const task = await this.getTask(id);
    if (task && (task.status === Status.RUNNING || task.status === Status.PAUSED)) {
      const exited = this.waitFor(id);
      await this.kill(id, os.signals.SIGKILL);
      await withTimeout(`remove container ${id}`, this.options.callTimeoutMs, () => exited);
    }
    const ignoreMissing = (error: unknown) => {
      if (!isRuntimeError(error, 'not-found')) throw error;
    };
    if (task) await c.call('delete task', c.tasks, c.tasks.delete, { containerId: id }).catch(ignoreMissing);
    await c.call('delete container', c.containers, c.containers.delete, { id }).catch(ignoreMissing);
    await c.call('remove snapshot', c.snapshots, c.snapshots.remove, { snapshotter: container.snapshotter || SNAPSHOTTER, key: container.snapshotKey || id }).catch(ignoreMissing);
    await rm(this.containerDir(id), { recursive: true, force: true });
    this.startedAt.delete(id);
    this.processIds.delete(id);
    this.oomKilled.delete(id);
    this.labelsCache.delete(id);
    this.runningTasks.forget(id);
  }

  private info(container: Container, task: Process | undefined): ContainerInfo {
    const state = stateOf(task);
    const exited = state === 'exited';
    return {
      id: container.id,
      name: container.labels[NAME_LABEL] ?? container.id,
      image: container.image,
      labels: container.labels,
      state,
      exitCode: exited ? task?.exitStatus : undefined,
      oomKilled: this.oomKilled.has(container.id),
      createdAt: container.createdAt,
      startedAt: task ? this.startedAt.get(container.id) : undefined,
      finishedAt: exited ? task?.exitedAt : undefined,
      portBindings: [],
      pid: state === 'running' && task?.pid ? task.pid : undefined,
    };
  }

  async inspectContainer(idOrName: string): Promise<ContainerInfo> {
    const container = await this.getContainer(idOrName, `inspect container ${idOrName}`);
    const task = await this.getTask(container.id);
    this.runningTasks.remember({ containerId: container.id, cgroupPath: this.cgroupPathOf(container.id, container.labels), labels: container.labels, process: task });
    if (task?.status === Status.STOPPED && task.exitStatus === 137 && !this.oomKilled.has(container.id) && (await this.cgroupSawOom(container.id))) this.oomKilled.add(container.id);
    return this.info(container, task);
  }

  /** The container's cgroup, as its spec names it. */
  private cgroupPathOf(id: string, labels: Record<string, string> | undefined): string {
    return labels?.[CGROUP_LABEL] ?? `/${this.options.namespace}/${id}`;
  }

  /** Whether the container's cgroup (still there until its task is deleted) counted an OOM kill. */
  private async cgroupSawOom(id: string): Promise<boolean> {
    const labels =
      this.labelsCache.get(id) ??
      (await this.getContainer(id, `inspect container ${id}`).then(
        (found) => found.labels,
        () => undefined,
      ));
    return oomKillsIn(this.cgroupPathOf(id, labels));
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    const c = this.client;
    const filters = Object.keys(labels).length > 0 ? [labelFilter(labels)] : [];
    // Knowing no task running (the first listing after a start), every task is asked for at once.
    const [{ containers }, everyTask] = await Promise.all([c.call('list containers', c.containers, c.containers.list, { filters }), this.runningTasks.size === 0 ? this.everyTask() : undefined]);
    this.runningTasks.forgetUnlisted(labels, new Set(containers.map((container) => container.id)));
    const tasks = await this.runningTasks.stillRunning(containers.map((container) => container.id));
    const unknown = containers.filter((container) => !tasks.has(container.id));
    const answered = everyTask ?? (await this.tasksOf(unknown.map((container) => container.id)));
    await this.runningTasks.rememberAll(unknown.map(({ id, labels }) => ({ containerId: id, cgroupPath: this.cgroupPathOf(id, labels), labels, process: answered.get(id) })));
    for (const { id } of unknown) {
      const task = answered.get(id);
      if (task) tasks.set(id, task);
    }
    return containers.map((container) => this.info(container, tasks.get(container.id)));
  }

  /**
   * The tasks of these containers as containerd reports them (a container without a task has
   * none): each asked for on its own when they are few, else all through one Tasks.List, which
   * asks every task's shim in turn.
   */
  private async tasksOf(ids: readonly string[]): Promise<Map<string, Process>> {
    const found = new Map<string, Process>();
    if (ids.length === 0) return found;
    if (ids.length <= TASKS_ASKED_ONE_BY_ONE) {
      await Promise.all(
        ids.map(async (id) => {
          const task = await this.getTask(id);
          if (task) found.set(id, task);
        }),
      );
      return found;
    }
    return this.everyTask();
  }

  /** Every task of the namespace, by container, through one Tasks.List. */
  private async everyTask(): Promise<Map<string, Process>> {
    const c = this.client;
    const { tasks } = await c.call('list tasks', c.tasks, c.tasks.list, { filter: '' });
    // Tasks.List names a container's own process by the container's id (container_id stays empty).
    return new Map(tasks.map((task) => [task.containerId || task.id, task]));
  }

  async exec(idOrName: string, command: string[], options: ExecOptions = {}): Promise<ExecResult> {
    const container = await this.getContainer(idOrName, `exec in container ${idOrName}`);
    const id = container.id;
    const spec = parseSpec(Buffer.from(container.spec?.value ?? '{}').toString('utf8')) as { process?: Record<string, unknown> };
    const dir = newExecDir(this.execRoot, id, 'exec');
    const execId = execIdOf(dir);
    await prepareExecDir(dir, id);
    // The output goes through the log writer too (its own file): the shim's plain file output
    // loses stderr when a command exits before the shim has begun to copy.
    const output = join(dir, 'output.log');
    const limit = options.maxOutputBytes ?? DEFAULT_EXEC_OUTPUT;
    const c = this.client;
    const operation = `exec in container ${id}`;
    const process = { ...spec.process, args: command, terminal: false };
    let deleted = false;
    const deleteProcess = async () => {
      if (deleted) return;
      deleted = true;
      // Wait can answer a moment before the shim has moved the process to "stopped", and a delete
      // in that moment is refused ("conflict"): try again, for at most a second.
      for (let attempt = 0; attempt < 20; attempt++) {
        const error = await c.call('delete exec process', c.tasks, c.tasks.deleteProcess, { containerId: id, execId }).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (!isRuntimeError(error, 'conflict')) return;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await c.call(operation, c.tasks, c.tasks.exec, {
        containerId: id,
        execId,
        stdin: '',
        stdout: this.outputUri(output, undefined, execFileCap(limit)),
        stderr: this.outputUri(output, undefined, execFileCap(limit)),
        terminal: false,
        spec: { typeUrl: PROCESS_TYPE, value: Buffer.from(specJson(process)) },
      });
      const exited = this.waitFor(id, execId);
      const { pid } = await c.call(operation, c.tasks, c.tasks.start, { containerId: id, execId });
      const cancelled = new Promise<never>((_, reject) => {
        const onAbort = () => reject(new RuntimeError('internal', operation, 'cancelled'));
        if (options.signal?.aborted) onAbort();
        options.signal?.addEventListener('abort', onAbort, { once: true });
        void exited.finally(() => options.signal?.removeEventListener('abort', onAbort)).catch(() => undefined);
      });
      const result = await withTimeout(operation, options.timeoutMs ?? this.options.callTimeoutMs, () => Promise.race([exited, cancelled])).catch(async (error: unknown) => {
        // The process and everything it started: the kill reaches only the exec's own process.
        const task = await this.getTask(id).catch(() => undefined);
        await killProcessTree(pid, task?.pid ?? 0);
        await c.call(operation, c.tasks, c.tasks.kill, { containerId: id, execId, signal: os.signals.SIGKILL, all: false }).catch(() => undefined);
        throw error;
      });
      // Deleting the process ends its log writer (which writes what it holds first).
      await deleteProcess();
      return { exitCode: result.exitStatus, output: await readOutput(output, limit) };
    } finally {
      await deleteProcess();
      await rm(dir, { recursive: true, force: true });
    }
  }

  async openSession(idOrName: string, command: string[], options: SessionProcessOptions): Promise<SessionProcess> {
    const operation = `exec in container ${idOrName}`;
    const container = await this.getContainer(idOrName, operation);
    const task = await this.getTask(container.id);
    if (task?.status !== Status.RUNNING || !task.pid) throw new RuntimeError('conflict', operation, 'the container is not running');
    const user = await checkProcessIdentity(task.pid, operation, options.user, options.workingDir);
    const spec = parseSpec(Buffer.from(container.spec?.value ?? '{}').toString('utf8')) as { process?: Record<string, unknown> };
    return openContainerdSession(
      {
        client: this.client,
        containerId: container.id,
        process: spec.process ?? {},
        taskPid: task.pid,
        dir: newExecDir(this.execRoot, container.id, 'session'),
        user,
        waitFor: (execId) => this.waitFor(container.id, execId),
      },
      command,
      options,
    );
  }

  /** The exec processes (one-shot and sessions) an earlier agent left: their directories say which. */
  async endLeftoverExecs(): Promise<number> {
    return endLeftoverExecs(this.client, this.execRoot);
  }

  /** Where each exec process's directory is made. */
  private get execRoot(): string {
    return join(this.options.stateDir, 'exec');
  }

  async attach(idOrName: string, options: { stdin: boolean }): Promise<ContainerAttachment> {
    const operation = `attach to container ${idOrName}`;
    const container = await this.getContainer(idOrName, operation);
    const task = await this.getTask(container.id);
    if (task?.status !== Status.RUNNING) throw new RuntimeError('conflict', operation, 'the container is not running');
    const tty = container.labels[TERMINAL_LABEL] === 'true';
    let stdinFifo: string | undefined;
    if (options.stdin) {
      if (container.labels[STDIN_LABEL] !== 'true') throw new RuntimeError('invalid', operation, 'the container was not started with an open standard input (interactive)');
      stdinFifo = join(this.containerDir(container.id), STDIN_FIFO_NAME);
      if (!(await lstat(stdinFifo).catch(() => undefined))?.isFIFO())
        throw new RuntimeError('invalid', operation, "the container's process has no standard input to write: it was started before berth gave interactive containers one, or without a terminal");
    }
    return attachContainerdContainer({
      client: this.client,
      containerId: container.id,
      tty,
      stdinFifo,
      follow: async (logOptions) => readLogFile(this.logFileOf(container), logOptions, this.waitFor(container.id, '', logOptions.signal)),
      waitExit: (signal) => this.waitFor(container.id, '', signal).then((r) => r.exitStatus),
    });
  }

  async logs(idOrName: string, options: LogOptions): Promise<AsyncIterable<LogLine>> {
    const container = await this.getContainer(idOrName, `read the logs of container ${idOrName}`);
    const task = options.follow ? await this.getTask(container.id) : undefined;
    // Followed until the process exits, then until the writer has written all it held (which may
    // take a moment after an exit that has already happened).
    const exited = task?.status === Status.RUNNING ? this.waitFor(container.id, '', options.signal) : task ? Promise.resolve() : undefined;
    return readLogFile(this.logFileOf(container), options, exited);
  }

  async stats(idOrName: string): Promise<ContainerStatsSample> {
    const operation = `read the resource use of container ${idOrName}`;
    const container = await this.getContainer(idOrName, operation);
    const task = await this.getTask(container.id);
    if (task?.status !== Status.RUNNING) throw new RuntimeError('conflict', operation, 'the container is not running');
    const c = this.client;
    const { metrics } = await c.call(operation, c.tasks, c.tasks.metrics, { filters: [`id==${container.id}`] });
    const metric = metrics[0];
    if (!metric?.data) throw new RuntimeError('conflict', operation, 'containerd has no metrics for the container');
    const sample = decodeCgroupMetrics(metric.data, totalmem(), operation);
    // containerd's cgroup metrics have no network: the counters of the process's namespace do.
    return { ...sample, time: metric.timestamp ?? new Date(), network: await namespaceTraffic(task.pid) };
  }

  async events(labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>> {
    const c = this.client;
    const operation = 'watch containerd events';
    const stream = c.events.subscribe({ filters: [`namespace==${this.options.namespace},topic~="^/tasks/"`] }, c.metadata());
    const onAbort = () => stream.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    const matches = async (id: string) => {
      let own = this.labelsCache.get(id);
      if (!own) {
        own = await this.getContainer(id, operation).then(
          (found) => found.labels,
          () => undefined,
        );
        if (!own) return false;
        this.labelsCache.set(id, own);
      }
      return Object.entries(labels).every(([key, value]) => own![key] === value);
    };
    const filter = { matches, isCurrentProcess: (id: string, pid: number) => this.isCurrentProcess(id, pid), cgroupSawOom: (id: string) => this.cgroupSawOom(id), oomKilled: this.oomKilled };
    return (async function* () {
      try {
        yield* runtimeEventsOf(stream as AsyncIterable<EventEnvelope>, filter);
      } catch (error) {
        if (signal.aborted) return;
        throw containerdError(operation, error);
      } finally {
        signal.removeEventListener('abort', onAbort);
        stream.cancel();
      }
      if (!signal.aborted) throw new RuntimeError('unavailable', operation, 'the event stream ended');
    })();
  }
}
