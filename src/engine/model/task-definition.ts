/**
 * The engine's own view of a task definition: plain data, already validated, defaults applied.
 * The server maps the protobuf message to this; nothing here knows about gRPC or a runtime.
 */

/**
 * none: loopback only, per container; host: the host's namespace; bridge: the runtime's bridge,
 * per container (on a runtime without one, CNI, as in task); task: one namespace for the whole
 * task, held by a pause container and wired by CNI, its containers reaching each other on localhost.
 */
export const NETWORK_MODES = ['none', 'host', 'bridge', 'task'] as const;
export type NetworkMode = (typeof NETWORK_MODES)[number];

export const PROTOCOLS = ['tcp', 'udp'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const DEPENDENCY_CONDITIONS = ['START', 'COMPLETE', 'SUCCESS', 'HEALTHY'] as const;
export type DependencyCondition = (typeof DEPENDENCY_CONDITIONS)[number];

export interface PortMapping {
  containerPort: number;
  /** 0 for a dynamic host port. */
  hostPort: number;
  protocol: Protocol;
  hostIp: string;
}

export interface ContainerDependency {
  containerName: string;
  condition: DependencyCondition;
}

/** Docker's log drivers, which the API takes by name. */
export const LOG_DRIVERS = ['json-file', 'local', 'syslog', 'journald', 'fluentd', 'gelf', 'splunk', 'awslogs', 'none'] as const;

export interface LogConfiguration {
  driver: (typeof LOG_DRIVERS)[number];
  options: Record<string, string>;
  secretOptions: { name: string; valueFrom: string }[];
}

export interface RegistryCredentials {
  username: string;
  password: string;
}

export interface HealthCheck {
  command: string[];
  intervalMs: number;
  timeoutMs: number;
  /** Failing probes in a row that make the container UNHEALTHY. */
  retries: number;
  startPeriodMs: number;
}

export interface RestartPolicy {
  enabled: boolean;
  ignoredExitCodes: number[];
  /** A container must have run this long for its exit to be restarted; 0 restarts every exit. */
  restartAttemptPeriodMs: number;
}

/** A task volume (`sourceVolume`) or a host path (`hostPath`) mounted into a container. */
export interface MountPoint {
  /** Empty when the mount names a volume. */
  hostPath: string;
  containerPath: string;
  readOnly: boolean;
  /** A volume of the task (absent in definitions saved before volumes existed). */
  sourceVolume?: string;
}

/** task: created for the task and removed at its cleanup; shared: the runtime's volume of that name, outliving tasks. */
export type VolumeScope = 'task' | 'shared';

export interface Volume {
  name: string;
  /** A host directory bind-mounted; the other fields then do not apply. */
  hostPath?: string;
  scope: VolumeScope;
  /** shared only: create the volume when missing. */
  autoprovision: boolean;
  driver: string;
  driverOptions: Record<string, string>;
  labels: Record<string, string>;
}

/** task: one namespace for the task's containers, held by its pause container; host: the host's. */
/** `none`: ipc only, a private namespace without /dev/shm. */
export type NamespaceMode = 'task' | 'host' | 'none';

/** The mounts of another container of the task. */
export interface VolumeFrom {
  sourceContainer: string;
  readOnly: boolean;
}

/** Capabilities on top of the default set; names upper case with CAP_, or "ALL". */
export interface KernelCapabilities {
  add: string[];
  drop: string[];
}

export interface TmpfsMount {
  containerPath: string;
  sizeMib: number;
  mountOptions: string[];
}

export const DEVICE_PERMISSIONS = ['read', 'write', 'mknod'] as const;

/** A host device given to a container. */
export interface Device {
  hostPath: string;
  containerPath: string;
  permissions: (typeof DEVICE_PERMISSIONS)[number][];
}

export interface LinuxParameters {
  capabilities?: KernelCapabilities;
  initProcessEnabled: boolean;
  /** 0 for the default (64 MiB). */
  sharedMemorySizeMib: number;
  tmpfs: TmpfsMount[];
  /** Absent in definitions saved before devices existed. */
  devices?: Device[];
  /** Swap on top of the memory limit; undefined for the runtime's default. */
  maxSwapMib?: number;
  swappiness?: number;
}

/** dockerSecurityOptions, understood. */
export interface SecurityOptions {
  noNewPrivileges: boolean;
  /** A profile loaded on the host, or "unconfined". */
  apparmorProfile?: string;
  seccompUnconfined: boolean;
}

export const ULIMIT_NAMES = ['core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile', 'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack'] as const;
export type UlimitName = (typeof ULIMIT_NAMES)[number];

/** -1 for unlimited. */
export interface Ulimit {
  name: UlimitName;
  softLimit: number;
  hardLimit: number;
}

export interface HostEntry {
  hostname: string;
  ipAddress: string;
}

/**
 * Settings of how a container runs that its definition may carry beyond the core (absent in
 * definitions saved before they existed; every field absent means the runtime's default).
 */
export interface ContainerOptions {
  /** A signal name (SIGTERM) or number; empty for the image's. */
  stopSignal?: string;
  linuxParameters?: LinuxParameters;
  ulimits?: Ulimit[];
  readonlyRootFilesystem?: boolean;
  hostname?: string;
  extraHosts?: HostEntry[];
  dnsServers?: string[];
  dnsSearchDomains?: string[];
  volumesFrom?: VolumeFrom[];
  /** Namespaced sysctls, by name. */
  systemControls?: Record<string, string>;
  securityOptions?: SecurityOptions;
  /** A namespace of its own with loopback only. */
  disableNetworking?: boolean;
  /** Standard input kept open (nothing written to it). */
  interactive?: boolean;
  /** A pseudo-terminal for standard input, output and error. */
  pseudoTerminal?: boolean;
  /** Variables from the secret providers: references only, resolved at each create. */
  secrets?: { name: string; valueFrom: string }[];
  /** References of files of VARIABLE=VALUE lines, resolved at each create. */
  environmentFiles?: string[];
  /** A log driver besides berth's own copy; secret options are references, resolved at each create. */
  logConfiguration?: LogConfiguration;
  /** Bridge mode: other containers reached by name. */
  links?: { container: string; alias: string }[];
}

export interface ContainerDefinition extends ContainerOptions {
  name: string;
  image: string;
  command: string[];
  entrypoint: string[];
  environment: Record<string, string>;
  workingDirectory: string;
  user: string;
  cpuUnits: number;
  memoryMib: number;
  memoryReservationMib: number;
  portMappings: PortMapping[];
  essential: boolean;
  dependsOn: ContainerDependency[];
  /** Undefined for the agent's default. */
  stopTimeoutMs?: number;
  labels: Record<string, string>;
  registryCredentials?: RegistryCredentials;
  /** A reference the secret providers resolve to the registry credentials (instead of registryCredentials). */
  registryCredentialsParameter?: string;
  healthCheck?: HealthCheck;
  restartPolicy?: RestartPolicy;
  gpuCount: number;
  /** How long dependents wait for this container to meet their condition once it started. */
  startTimeoutMs?: number;
  /** 0 for the agent's default. */
  pidsLimit: number;
  /** Host paths mounted into the container (absent in definitions saved before they existed). */
  mountPoints?: MountPoint[];
  /** Every capability and device of the host. */
  privileged?: boolean;
}

export interface TaskDefinition {
  id: string;
  family: string;
  revision: number;
  networkMode: NetworkMode;
  containers: ContainerDefinition[];
  /** 0: the sum of the containers' cpu units. */
  cpuUnits: number;
  /** 0: the sum of the containers' memory reservations (else limits). */
  memoryMib: number;
  /** Absent in definitions saved before volumes existed. */
  volumes?: Volume[];
  /** Undefined: each container has its own. */
  pidMode?: NamespaceMode;
  ipcMode?: NamespaceMode;
  /**
   * The definition exactly as the client sent it (fields it left unset still unset, its
   * credentials removed), opaque to the engine: kept so that the definition is answered back as
   * it was sent, and a client can compare the two. Absent in definitions saved before it existed.
   */
  clientForm?: Record<string, unknown>;
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([k, v]) => [k, canonical(v)]),
    );
  }
  return value;
}

/** A definition without its containers' registry credentials (nor the client's form of it). */
function withoutCredentials(d: TaskDefinition): TaskDefinition {
  return { ...d, clientForm: undefined, containers: d.containers.map((c) => ({ ...c, registryCredentials: undefined })) };
}

/**
 * True when two definitions describe the same task (key order and undefined fields aside).
 * Registry credentials are not compared: otherwise a replay of RunTask with a guessed password
 * would learn from the answer (the task, or ALREADY_EXISTS) whether the guess was right.
 */
export function sameDefinition(a: TaskDefinition, b: TaskDefinition): boolean {
  return JSON.stringify(canonical(withoutCredentials(a))) === JSON.stringify(canonical(withoutCredentials(b)));
}
