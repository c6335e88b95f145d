/**
 * Runtime-neutral types that cross the ContainerRuntime contract. No Docker or containerd type
 * appears here, and nothing here knows about tasks.
 */

export type RuntimeName = 'docker' | 'containerd';

export interface RuntimeVersion {
  name: RuntimeName;
  version: string;
  apiVersion: string;
}

export interface RegistryAuth {
  username: string;
  password: string;
}

export interface PullProgress {
  /** Bytes downloaded so far, summed over the image's layers. */
  bytesDone: number;
  /** Total bytes to download, summed over the layers whose size is known so far. */
  bytesTotal: number;
}

export interface PullOptions {
  auth?: RegistryAuth;
  onProgress?: (progress: PullProgress) => void;
  /** Aborts the pull. */
  signal?: AbortSignal;
  /** Overrides the adapter's pull timeout. */
  timeoutMs?: number;
}

export interface ImageInfo {
  /** Content-addressed id, e.g. sha256:… */
  id: string;
  references: string[];
  sizeBytes: number;
}

/**
 * none: a namespace of its own with loopback only; host: the host's; bridge: the runtime's own
 * bridge (where it has one); container: the namespace of another container (`networkContainer`);
 * namespace: a named namespace the caller made (`networkNamespacePath`), on a runtime that can
 * join one (`joinsNetworkNamespaces`).
 */
export type NetworkMode = 'none' | 'host' | 'bridge' | 'container' | 'namespace';
export type Protocol = 'tcp' | 'udp';

export interface PortSpec {
  containerPort: number;
  /** 0 lets the runtime choose a free host port. */
  hostPort: number;
  protocol: Protocol;
  /** Empty for every address. */
  hostIp: string;
}

export interface PortBinding {
  containerPort: number;
  hostPort: number;
  protocol: Protocol;
  hostIp: string;
}

/** A log driver and its options (secret options resolved), as Docker's --log-driver and --log-opt. */
export interface ContainerLogConfiguration {
  driver: string;
  options: Record<string, string>;
}

export interface ContainerSpec {
  /** Deterministic name, unique in the runtime. */
  name: string;
  image: string;
  /** Replaces the image's command when set. */
  command?: string[];
  /** Replaces the image's entrypoint when set. */
  entrypoint?: string[];
  env: Record<string, string>;
  workingDir?: string;
  user?: string;
  labels: Record<string, string>;
  /** Relative CPU weight (1024 = one core's worth); 0 for the runtime default. */
  cpuShares: number;
  /** Hard memory limit; 0 for none. */
  memoryBytes: number;
  /** Soft memory limit; 0 for none. */
  memoryReservationBytes: number;
  network: NetworkMode;
  /** For network "container": the container whose network namespace is joined, and that namespace's path. */
  networkContainer?: { id: string; netnsPath: string };
  /** For network "namespace": the path of the network namespace the container joins (/run/netns/…). */
  networkNamespacePath?: string;
  /**
   * For network "none": the container only holds its namespace for others to join (a pause
   * container, whose process reads no file of the network). The runtime may leave out what only
   * a process using the network needs: on Docker, libnetwork's sandbox (a hook that runs dockerd
   * again at each start) and the /etc files; the containers that join it get berth's.
   */
  networkHolder?: boolean;
  ports: PortSpec[];
  /** Maximum number of processes; 0 for none. */
  pidsLimit?: number;
  /**
   * The cgroup (a path from the hierarchy's root, for the cgroupfs driver) the container's own
   * cgroup is made in: the task's, whose limits all of its containers share. Unset: the runtime's default.
   */
  cgroupParent?: string;
  /** Where the output goes besides the runtime's own copy; unset: that copy, with the agent's rotation. */
  logConfiguration?: ContainerLogConfiguration;
  /** GPU ids to give the container. */
  gpuIds?: string[];
  /** Host paths bind-mounted into the container. */
  mounts?: { hostPath: string; containerPath: string; readOnly: boolean }[];
  /**
   * Volumes of the runtime (see createVolume) mounted into the container. An empty volume gets a
   * copy of what the image has at its path first (Docker's rule), on every runtime.
   */
  volumeMounts?: { volume: string; containerPath: string; readOnly: boolean }[];
  /** Every capability and device of the host, no seccomp or AppArmor confinement. */
  privileged?: boolean;
  /** The exact capability set (CAP_ names) of an unprivileged container; the runtime default when unset. */
  capabilities?: string[];
  /** Replaces the image's stop signal: a name (SIGTERM) or a number. */
  stopSignal?: string;
  /** An init (tini) as PID 1 at /sbin/docker-init, running the container's process. */
  init?: boolean;
  /** Standard input kept open, with nothing written to it (Docker's -i). */
  openStdin?: boolean;
  /**
   * A pseudo-terminal for standard input, output and error (Docker's -t); the logs then hold what
   * the terminal wrote, all of it as stdout.
   */
  tty?: boolean;
  /** Size of /dev/shm; the runtime default (64 MiB) when unset. */
  shmSizeBytes?: number;
  /** tmpfs mounts; `options` as Docker's --tmpfs takes them, without the size. */
  tmpfs?: { containerPath: string; sizeBytes: number; options: string[] }[];
  /** setrlimit values; -1 is unlimited. */
  ulimits?: { name: string; soft: number; hard: number }[];
  readonlyRootfs?: boolean;
  /** The container's host name; the runtime's default when unset. */
  hostname?: string;
  /** Lines added to /etc/hosts. */
  extraHosts?: { hostname: string; ipAddress: string }[];
  /** Replace the name servers and search domains of /etc/resolv.conf, when not empty. */
  dnsServers?: string[];
  dnsSearchDomains?: string[];
  /** Host devices; `access` as the device cgroup writes it ("rwm" or part of it). */
  devices?: { hostPath: string; containerPath: string; access: string }[];
  /** Swap allowed on top of `memoryBytes` (which must be set); the runtime default when unset. */
  swapBytes?: number;
  swappiness?: number;
  /** Namespaced sysctls. */
  sysctls?: Record<string, string>;
  /** Off unless set, as on Docker. */
  noNewPrivileges?: boolean;
  /** Replaces the runtime's AppArmor profile; "unconfined" for none. */
  apparmorProfile?: string;
  /** No seccomp filter. */
  seccompUnconfined?: boolean;
  /** The process namespace: the host's, or that of another (running) container; its own when unset. */
  pidNamespace?: 'host' | { containerId: string };
  /**
   * Bridge mode: other containers reached by name (alias): Docker's legacy links, by runtime
   * name; a runtime whose bridge mode is one namespace per task resolves them to 127.0.0.1.
   */
  links?: { runtimeName: string; alias: string; name: string }[];
  /**
   * The IPC namespace: the host's, another container's, its own that others may join
   * ("shareable"), or its own without /dev/shm ("none").
   */
  ipcNamespace?: 'host' | 'shareable' | 'none' | { containerId: string };
}

/** A volume of the runtime: Docker's volumes; berth's own local volumes on containerd. */
export interface VolumeSpec {
  name: string;
  /** "local" for the runtime's own. */
  driver: string;
  driverOptions: Record<string, string>;
  labels: Record<string, string>;
}

export interface VolumeInfo {
  name: string;
  driver: string;
  labels: Record<string, string>;
}

export type ContainerState = 'created' | 'running' | 'paused' | 'restarting' | 'exited' | 'dead' | 'unknown';

export interface ContainerInfo {
  id: string;
  name: string;
  image: string;
  labels: Record<string, string>;
  state: ContainerState;
  /** Set once the container has exited. */
  exitCode?: number;
  oomKilled: boolean;
  /** The runtime's own error for the container, e.g. why it could not start. */
  error?: string;
  createdAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
  portBindings: PortBinding[];
  /** Host pid of the container's main process while it runs (inspect only). */
  pid?: number;
}

/** How much output of one container is kept: files of at most `maxFileBytes`, `maxFiles` in all. */
export interface LogRotation {
  maxFileBytes: number;
  maxFiles: number;
}

export interface ExecOptions {
  /** The command is killed (with what it started) when it runs longer than this… */
  timeoutMs?: number;
  /** …or when this aborts. */
  signal?: AbortSignal;
  /** Output beyond this many bytes is dropped. Default 64 KiB. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  exitCode: number;
  /** stdout and stderr, interleaved as they arrived, as bytes (not necessarily UTF-8). */
  output: Buffer;
}

/**
 * A running container's own standard streams, attached to (`docker attach`): its output from the
 * moment of attaching, and its standard input when asked for. Closing detaches; the container
 * runs on and its input stays open.
 */
export interface ContainerAttachment {
  /** Standard output, or the terminal's output with a terminal. */
  readonly output: NodeJS.ReadableStream;
  /** Standard error; undefined with a terminal. */
  readonly errors?: NodeJS.ReadableStream;
  /** Standard input, when asked for; ending it detaches it (the container's input stays open). */
  readonly input?: NodeJS.WritableStream;
  /** The exit code, once the container's process has exited. */
  readonly exited: Promise<number>;
  /** Sets the container's terminal's size. */
  resize(size: TerminalSize): Promise<void>;
  /** Detaches. Safe to call more than once. */
  close(): Promise<void>;
}

/** A terminal's size in character cells. */
export interface TerminalSize {
  columns: number;
  rows: number;
}

/** How a process of an interactive session is started in a running container. */
export interface SessionProcessOptions {
  /** A pseudo-terminal for its standard streams; its output comes on `output` only. */
  tty: boolean;
  /** Whether its standard input is open for `input` (with a terminal it always is). */
  stdin: boolean;
  /** The terminal's size from the start (tty). */
  terminalSize?: TerminalSize;
  /** Added to the container's environment. */
  env?: Record<string, string>;
  /** The container's user when unset. */
  user?: string;
  /** The container's working directory when unset. */
  workingDir?: string;
}

/**
 * A process started in a running container whose standard streams its caller holds. Its output
 * streams end once the process has exited and what it wrote has been read.
 */
export interface SessionProcess {
  /** Standard output, or the terminal's output (stdout and stderr) with a terminal. */
  readonly output: NodeJS.ReadableStream;
  /** Standard error; undefined with a terminal. */
  readonly errors?: NodeJS.ReadableStream;
  /** Standard input (the terminal's keyboard); undefined when it is not open. Ending it closes it. */
  readonly input?: NodeJS.WritableStream;
  /** The exit code, once the process has exited (128 + the signal's number when a signal ended it). */
  readonly exited: Promise<number>;
  /** Sets the terminal's size (tty only); the process gets SIGWINCH. */
  resize(size: TerminalSize): Promise<void>;
  /** Sends a signal to the process. */
  signal(signal: NodeJS.Signals): Promise<void>;
  /**
   * Ends the session: a process still running is killed with everything it started, and the
   * runtime's side of the streams is released. Safe to call more than once, and after the exit.
   */
  close(): Promise<void>;
}

export type LogStream = 'stdout' | 'stderr';

export interface LogOptions {
  /** Keep streaming new lines until the container's process exits or `signal` aborts. */
  follow: boolean;
  /** Only the last this many lines (of the selected streams) that exist when the call begins. */
  tail?: number;
  /** Only lines written at or after this time. */
  since?: Date;
  /** The streams to read; both when unset. */
  streams?: LogStream[];
  signal: AbortSignal;
}

export interface LogLine {
  /** When the runtime received the line. */
  time: Date;
  stream: LogStream;
  /** The line without its newline. */
  text: Buffer;
  /** True when the line was cut (it was too long, or its process ended before a newline). */
  partial: boolean;
}

/** One sample of a container's resource use; counters are cumulative since the container started. */
export interface ContainerStatsSample {
  time: Date;
  /** CPU time used, in nanoseconds. */
  cpuUsageNanos: number;
  /** Memory in use, page cache that could be dropped excluded (what `docker stats` shows). */
  memoryUsageBytes: number;
  /** The memory limit; the host's memory when the container has none. */
  memoryLimitBytes: number;
  /** Summed over the interfaces of the container's network namespace (loopback excluded). */
  network: { rxBytes: number; txBytes: number; rxPackets: number; txPackets: number };
  pids: number;
}

export type RuntimeEvent = { type: 'start'; containerId: string; time: Date } | { type: 'exit'; containerId: string; exitCode: number; time: Date } | { type: 'oom'; containerId: string; time: Date };
