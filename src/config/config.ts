// Longer than most files on purpose: the whole config schema (types, defaults, environment
// variables, bounds) in one place, so that a key's type, default and limits are read together.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { CapacitySettings } from '../engine/resources/host-capacity.js';
import { ULIMIT_NAMES, type Ulimit, type UlimitName } from '../engine/model/task-definition.js';
import { PULL_BEHAVIORS, type PullBehavior } from '../engine/images/image-manager.js';
import {
  checkIpv4Subnet,
  DEFAULT_NETWORK_SHAPE,
  defaultNetworkConfigList,
  NetworkConfigError,
  parseNetworkConfigList,
  withoutPortMapping,
  type NetworkConfigList,
} from '../engine/network/cni/network-config.js';
import type { MasqueradedNetwork } from '../engine/network/subnet-masquerade.js';
import { DEFAULT_REQUEST_LIMITS, MAX_DURATION_MS, type RequestLimits } from '../engine/admission/request-limits.js';
import { ImageReferenceError, parseImageReference } from '../runtime/image-reference.js';
import type { SecretProviderSettings } from '../secrets/secret-providers.js';
import { parseDuration } from './duration.js';

/**
 * berth's configuration, in stages: the file's JSON (every key optional, defaults below) and the
 * environment are merged into a raw object, which `compileConfig` validates and normalises
 * (durations to milliseconds) into a BerthConfig. Every error names the key it is about.
 */
export interface BerthConfig {
  /** Written on every container as berth.agent-id; only containers with this id are ever adopted. */
  agentId: string;
  dataDir: string;
  logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  grpc: {
    /** Unix socket path; the socket is created with `socketMode`, a stale one is replaced. */
    socketPath: string;
    socketMode: number;
    /** Group (name or gid) given the socket, so its members may call berth; the agent's own when unset. */
    socketGroup?: string;
    /** host:port for TCP, when set. Needs `tls` unless it is a loopback address. */
    tcpAddress?: string;
    tls?: { certFile: string; keyFile: string; clientCaFile?: string };
    /** Largest message the server receives or sends. */
    maxMessageBytes: number;
    /** Streams (calls) one client connection may have open at once. */
    maxConcurrentStreams: number;
    /** A connection is pinged after this long without traffic… */
    keepaliveTimeMs: number;
    /** …and closed, with its calls, when the ping is not answered within this: dead clients are reaped. */
    keepaliveTimeoutMs: number;
  };
  runtime: {
    kind: 'docker' | 'containerd';
    docker: { host: string; callTimeoutMs: number };
    containerd: {
      socketPath: string;
      /** containerd namespace of everything berth makes. */
      namespace: string;
      callTimeoutMs: number;
      /** Registries pulled from over plain HTTP (loopback ones always are). */
      insecureRegistries: string[];
      /** AppArmor profile of unprivileged containers; empty: docker-default where it is loaded. */
      apparmorProfile: string;
      /** A static init binary for containers with init_process_enabled (Debian's tini-static). */
      initBinary: string;
    };
  };
  images: {
    pullBehavior: PullBehavior;
    maxConcurrentPulls: number;
    pullTimeoutMs: number;
    pullInactivityTimeoutMs: number;
    /** How long the registry's acceptance of a task's credentials for a cached private image is trusted. */
    accessCheckValidityMs: number;
    /** Minimum time between two pull progress events of one container. */
    progressIntervalMs: number;
    cleanup: { enabled: boolean; intervalMs: number; minimumAgeMs: number; perCycle: number; exclude: string[] };
    /**
     * Credentials per registry host ("registry.example.com:5000"), for containers whose definition
     * carries none (like the ECS agent's ECS_ENGINE_AUTH_DATA): ECS task definitions never do.
     */
    registryCredentials: Record<string, { username: string; password: string }>;
    /** A Docker config.json whose credHelpers, credsStore and auths give credentials for registries (after the static ones). */
    dockerConfig?: string;
    /** Directories searched for docker-credential-<name> before the PATH. */
    credentialHelperDirs: string[];
    /** How long credentials from a helper or the Docker config are used before they are asked for again. */
    credentialCacheTtlMs: number;
  };
  engine: {
    defaultStopTimeoutMs: number;
    taskCleanupWaitMs: number;
    runtimeCheckIntervalMs: number;
    /** Pids limit of containers that set none; 0 for no limit. */
    defaultPidsLimit: number;
    /** Resource limits of containers that set none of that name (the same on every runtime). */
    defaultUlimits: Ulimit[];
    restartBackoff: { initialMs: number; maxMs: number; resetAfterMs: number };
    /** Re-inspects running containers this often (± 10%), in case the event stream missed one. */
    relistIntervalMs: number;
    /** A container with this agent's labels that no task owns is removed after this long. */
    orphanGracePeriodMs: number;
    /** An interactive session (ExecSession, PortForward) through which nothing passed for this long is ended. */
    sessionIdleTimeoutMs: number;
  };
  /** Host capacity for tasks (see src/engine/resources/host-capacity.ts for each field). */
  resources: CapacitySettings;
  /** What tasks may ask for; each is refused with PERMISSION_DENIED unless allowed here. */
  security: { allowPrivileged: boolean; allowHostPathMounts: boolean; allowHostNetwork: boolean; allowDevices: boolean; allowUnconfined: boolean; allowHostPid: boolean; allowHostIpc: boolean };
  /** Where containers' secrets and environment files come from (src/secrets/). */
  secrets: { providers: SecretProviderSettings[] };
  metrics: {
    /** host:port of the Prometheus endpoint (GET /metrics); off when unset. */
    address?: string;
  };
  /** The task metadata endpoint (like ECS's v4): off when `address` is unset. */
  metadata: {
    /** host:port to listen on; 0.0.0.0 so that containers on bridges reach it at their gateway. */
    address?: string;
    /** Requests per second per container, after a burst of `burst`. */
    requestsPerSecond: number;
    burst: number;
  };
  /** Task networking through CNI (network mode task, and bridge on containerd). */
  network: {
    /** Image of the container that holds a task's network namespace. */
    pauseImage: string;
    cni: {
      /** Directories searched for plugin executables, in order. */
      pluginDirs: string[];
      /** The network configuration list every CNI-networked task is attached to. */
      config: NetworkConfigList;
      /** The list for tasks that map no host port, when it differs (the default network's, without portmap). */
      withoutPorts?: NetworkConfigList;
      /** The subnet berth masquerades itself: its default network's (none with a list of the user's). */
      masquerade?: MasqueradedNetwork;
      /** Interface created in the task's namespace. */
      interfaceName: string;
      /** Longest one plugin run may take. */
      pluginTimeoutMs: number;
      /**
       * Network namespaces kept ready with ADD done, for tasks that map no host port, on a runtime
       * whose containers join a namespace by its path (containerd); 0: none.
       */
      warmPoolSize: number;
      /** Most plugin programs run at once; the others wait in arrival order. 0: no limit. */
      maxParallelPlugins: number;
    };
  };
  /** Bounds on what one request may carry (src/engine/admission/request-limits.ts; README, Limits). */
  limits: RequestLimits;
  /** Containers' output kept by the runtime: rotated files of at most maxFileBytes, maxFiles in all. */
  logs: { maxFileBytes: number; maxFiles: number };
  events: {
    /** Events kept for replay: at most this many… */
    retain: number;
    /** …and none older than this. */
    retainForMs: number;
    /** A watcher further behind than this is disconnected. */
    maxWatcherLag: number;
    /** The newest events kept in memory, from which watchers that keep up are fed (0: none). */
    keepInMemory: number;
    heartbeatIntervalMs: number;
  };
  /** Membership of a fleet through etcd (src/cluster/); unset: the agent works alone. */
  cluster?: ClusterConfig;
}

/** How an agent joins a fleet: where etcd is, how to reach it, and what to tell it. */
export interface ClusterConfig {
  /** etcd's client URLs: http(s)://host:port, or host:port (https when `tls` is set). */
  endpoints: string[];
  /** TLS to etcd: the CA that signed its certificate and, for etcd's client-cert-auth, the agent's own. */
  tls?: { caFile: string; certFile?: string; keyFile?: string };
  /** Every key the fleet uses starts with this ("/berth/" by default); agents and controllers of one fleet share it. */
  prefix: string;
  /** The agent's registration vanishes this long after etcd last heard from it (whole seconds). */
  leaseTtlMs: number;
  /** Operator attributes placement constraints match on (os, arch and runtime are always set). */
  attributes: Record<string, string>;
  /** The gRPC address control planes use to reach this agent (host:port or unix:///path). */
  advertiseAddress: string;
}

/** A Linux network interface name: 1 to 15 characters (IFNAMSIZ), kept to ones no tool misreads. */
const INTERFACE_NAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Bounds of the cluster section. */
const MAX_ETCD_ENDPOINTS = 16;
const MAX_CLUSTER_ATTRIBUTES = 64;
/** Attributes the agent sets itself. */
export const BUILT_IN_ATTRIBUTES = ['os', 'arch', 'runtime'] as const;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly key: string,
    detail: string,
  ) {
    super(`config: ${key}: ${detail}`);
  }
}

type Raw = Record<string, unknown>;

/** Documented defaults, in the file's own shape. */
export function defaultConfigInput(env: NodeJS.ProcessEnv = process.env): Raw {
  return {
    agentId: hostname().replace(/[^A-Za-z0-9_.-]/g, '-'),
    dataDir: '/var/lib/berth',
    logLevel: 'info',
    grpc: { socket: '/run/berth/berth.sock', socketMode: '0660', allowInsecureTcp: false, maxMessageBytes: 4 * 1024 * 1024, maxConcurrentStreams: 100, keepaliveTime: '1m', keepaliveTimeout: '20s' },
    runtime: {
      kind: 'docker',
      docker: { host: env.DOCKER_HOST || 'unix:///var/run/docker.sock', callTimeout: '30s' },
      containerd: { socket: '/run/containerd/containerd.sock', namespace: 'berth', callTimeout: '30s', insecureRegistries: [], apparmorProfile: '', initBinary: '/usr/bin/tini-static' },
    },
    images: {
      pullBehavior: 'default',
      maxConcurrentPulls: 4,
      pullTimeout: '2h',
      pullInactivityTimeout: '1m',
      accessCheckValidity: '10m',
      progressInterval: '1s',
      cleanup: { enabled: true, interval: '30m', minimumAge: '1h', perCycle: 5, exclude: [] },
      registryCredentials: {},
      credentialHelperDirs: [],
      credentialCacheTtl: '15m',
    },
    engine: {
      defaultStopTimeout: '30s',
      taskCleanupWait: '3h',
      runtimeCheckInterval: '10s',
      defaultPidsLimit: 0,
      // None: containers inherit the runtime's own limits on Docker and on containerd alike.
      defaultUlimits: [],
      restartBackoff: { initial: '10s', max: '5m', resetAfter: '10m' },
      relistInterval: '5m',
      orphanGracePeriod: '5m',
      sessionIdleTimeout: '1h',
    },
    resources: {
      cpuUnits: 0,
      memoryMib: 0,
      reservedMemoryMib: 0,
      reservedTcpPorts: [22, 2375, 2376, 51678, 51679],
      reservedUdpPorts: [],
      dynamicPortRange: '49153-65535',
      gpuIds: [],
    },
    limits: { ...DEFAULT_REQUEST_LIMITS },
    logs: { maxFileBytes: 20 * 1024 * 1024, maxFiles: 5 },
    events: { retain: 100_000, retainFor: '24h', maxWatcherLag: 10_000, keepInMemory: 2048, heartbeatInterval: '10s' },
    security: { allowPrivileged: false, allowHostPathMounts: false, allowHostNetwork: false, allowDevices: false, allowUnconfined: false, allowHostPid: false, allowHostIpc: false },
    secrets: { providers: [] },
    metrics: {},
    metadata: { requestsPerSecond: 40, burst: 60 },
    network: {
      pauseImage: 'registry.k8s.io/pause:3.9',
      // `config` (inline) or `configFile` (a .conflist file) replace berth's default network.
      cni: { pluginDirs: ['/usr/lib/cni', '/opt/cni/bin'], interfaceName: 'eth0', pluginTimeout: '1m', warmPoolSize: 0, maxParallelPlugins: 32 },
    },
  };
}

/** Environment variables and the keys they set. */
export const ENVIRONMENT_KEYS: Record<string, string> = {
  BERTH_AGENT_ID: 'agentId',
  BERTH_DATA_DIR: 'dataDir',
  BERTH_LOG_LEVEL: 'logLevel',
  BERTH_SOCKET: 'grpc.socket',
  BERTH_TCP_ADDRESS: 'grpc.tcpAddress',
  BERTH_SOCKET_GROUP: 'grpc.socketGroup',
  BERTH_RUNTIME: 'runtime.kind',
  BERTH_DOCKER_HOST: 'runtime.docker.host',
  BERTH_CONTAINERD_SOCKET: 'runtime.containerd.socket',
  BERTH_CONTAINERD_NAMESPACE: 'runtime.containerd.namespace',
  BERTH_TASK_CLEANUP_WAIT: 'engine.taskCleanupWait',
  BERTH_DEFAULT_STOP_TIMEOUT: 'engine.defaultStopTimeout',
  BERTH_PULL_BEHAVIOR: 'images.pullBehavior',
  BERTH_PAUSE_IMAGE: 'network.pauseImage',
  BERTH_METRICS_ADDRESS: 'metrics.address',
  BERTH_METADATA_ADDRESS: 'metadata.address',
  BERTH_CNI_CONFIG_FILE: 'network.cni.configFile',
};

function isObject(value: unknown): value is Raw {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Deep-merges `over` into `base`; `over`'s keys win. Unknown keys are kept, to be reported. */
function merge(base: Raw, over: Raw): Raw {
  const result: Raw = { ...base };
  for (const [key, value] of Object.entries(over)) {
    result[key] = isObject(value) && isObject(result[key]) ? merge(result[key] as Raw, value) : value;
  }
  return result;
}

function setPath(target: Raw, path: string, value: unknown): void {
  const keys = path.split('.');
  let node = target;
  for (const key of keys.slice(0, -1)) {
    if (!isObject(node[key])) node[key] = {};
    node = node[key] as Raw;
  }
  node[keys[keys.length - 1]!] = value;
}

/** Reads the config file (when given) and the environment, and compiles them. */
export function loadConfig(file: string | undefined, env: NodeJS.ProcessEnv = process.env): BerthConfig {
  let raw = defaultConfigInput(env);
  if (file) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new ConfigError(file, `cannot read the config file (${(error as Error).message})`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new ConfigError(file, `is not valid JSON (${(error as Error).message})`);
    }
    if (!isObject(parsed)) throw new ConfigError(file, 'must hold a JSON object');
    raw = merge(raw, parsed);
  }
  const fromEnv: Raw = {};
  for (const [variable, key] of Object.entries(ENVIRONMENT_KEYS)) {
    const value = env[variable];
    if (value !== undefined && value !== '') setPath(fromEnv, key, value);
  }
  return compileConfig(merge(raw, fromEnv));
}

/** Validates a merged raw config and normalises it. */
export function compileConfig(raw: Raw): BerthConfig {
  const read = new Reader(raw);
  const agentId = read.string('agentId', /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/);
  const logLevel = read.oneOf('logLevel', ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const);
  const socketMode = read.string('grpc.socketMode', /^0?[0-7]{3}$/);
  const tcpAddress = read.optionalString('grpc.tcpAddress');
  const certFile = read.optionalString('grpc.tls.certFile');
  const keyFile = read.optionalString('grpc.tls.keyFile');
  const clientCaFile = read.optionalString('grpc.tls.clientCaFile');
  if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError('grpc.tls', 'needs both certFile and keyFile');
  const tls = certFile && keyFile ? { certFile, keyFile, clientCaFile } : undefined;
  const allowInsecureTcp = read.boolean('grpc.allowInsecureTcp');
  if (tcpAddress) {
    const match = /^(.*):(\d{1,5})$/.exec(tcpAddress);
    if (!match || Number(match[2]) > 65535) throw new ConfigError('grpc.tcpAddress', `must be host:port (got "${tcpAddress}")`);
    const host = match[1]!.replace(/^\[|\]$/g, '');
    const loopback = host === 'localhost' || host.startsWith('127.') || host === '::1';
    if (!loopback && !tls) throw new ConfigError('grpc.tcpAddress', `a non-loopback address (${tcpAddress}) needs grpc.tls`);
    // Plain TCP lets every local user call berth, which the socket's mode and group would not.
    if (!tls && !allowInsecureTcp) {
      throw new ConfigError('grpc.tcpAddress', `plain TCP (${tcpAddress}, without grpc.tls) lets any local user call berth: set grpc.tls, or grpc.allowInsecureTcp to true`);
    }
  }
  const kind = read.oneOf('runtime.kind', ['docker', 'containerd'] as const);
  const config: BerthConfig = {
    agentId,
    dataDir: read.string('dataDir'),
    logLevel,
    grpc: {
      socketPath: read.string('grpc.socket', /^\//),
      socketMode: Number.parseInt(socketMode, 8),
      socketGroup: read.optionalString('grpc.socketGroup'),
      tcpAddress,
      tls,
      maxMessageBytes: read.integer('grpc.maxMessageBytes', 64 * 1024, 64 * 1024 * 1024),
      maxConcurrentStreams: read.integer('grpc.maxConcurrentStreams', 1, 100_000),
      keepaliveTimeMs: read.duration('grpc.keepaliveTime', 1000),
      keepaliveTimeoutMs: read.duration('grpc.keepaliveTimeout', 1000),
    },
    runtime: {
      kind,
      docker: {
        host: read.string('runtime.docker.host', /^(unix:\/\/\/|tcp:\/\/|\/)/),
        callTimeoutMs: read.duration('runtime.docker.callTimeout', 100),
      },
      containerd: {
        socketPath: read.string('runtime.containerd.socket', /^\//),
        namespace: read.string('runtime.containerd.namespace', /^[A-Za-z0-9]+([._-][A-Za-z0-9]+)*$/),
        callTimeoutMs: read.duration('runtime.containerd.callTimeout', 100),
        insecureRegistries: read.stringList('runtime.containerd.insecureRegistries'),
        apparmorProfile: read.optionalString('runtime.containerd.apparmorProfile') ?? '',
        initBinary: read.optionalString('runtime.containerd.initBinary') ?? '/usr/bin/tini-static',
      },
    },
    images: {
      pullBehavior: read.oneOf('images.pullBehavior', PULL_BEHAVIORS),
      maxConcurrentPulls: read.integer('images.maxConcurrentPulls', 1),
      pullTimeoutMs: read.duration('images.pullTimeout', 1000),
      pullInactivityTimeoutMs: read.duration('images.pullInactivityTimeout', 100),
      accessCheckValidityMs: read.duration('images.accessCheckValidity', 0),
      progressIntervalMs: read.duration('images.progressInterval', 0),
      cleanup: {
        enabled: read.boolean('images.cleanup.enabled'),
        intervalMs: read.duration('images.cleanup.interval', 100),
        minimumAgeMs: read.duration('images.cleanup.minimumAge', 0),
        perCycle: read.integer('images.cleanup.perCycle', 1),
        exclude: read.stringList('images.cleanup.exclude'),
      },
      registryCredentials: read.registryCredentials('images.registryCredentials'),
      dockerConfig: read.optionalString('images.dockerConfig'),
      credentialHelperDirs: read.stringList('images.credentialHelperDirs'),
      credentialCacheTtlMs: read.duration('images.credentialCacheTtl', 0),
    },
    engine: {
      defaultStopTimeoutMs: read.duration('engine.defaultStopTimeout', 0),
      taskCleanupWaitMs: read.duration('engine.taskCleanupWait', 0),
      runtimeCheckIntervalMs: read.duration('engine.runtimeCheckInterval', 100),
      defaultPidsLimit: read.integer('engine.defaultPidsLimit', 0),
      defaultUlimits: read.ulimits('engine.defaultUlimits'),
      restartBackoff: {
        initialMs: read.duration('engine.restartBackoff.initial', 10),
        maxMs: read.duration('engine.restartBackoff.max', 10),
        resetAfterMs: read.duration('engine.restartBackoff.resetAfter', 0),
      },
      relistIntervalMs: read.duration('engine.relistInterval', 1000),
      orphanGracePeriodMs: read.duration('engine.orphanGracePeriod', 0),
      sessionIdleTimeoutMs: read.duration('engine.sessionIdleTimeout', 1000),
    },
    resources: {
      cpuUnits: read.integer('resources.cpuUnits', 0),
      memoryMib: read.integer('resources.memoryMib', 0),
      reservedMemoryMib: read.integer('resources.reservedMemoryMib', 0),
      reservedTcpPorts: read.portList('resources.reservedTcpPorts'),
      reservedUdpPorts: read.portList('resources.reservedUdpPorts'),
      dynamicPortRange: read.portRange('resources.dynamicPortRange'),
      gpuIds: read.stringList('resources.gpuIds'),
    },
    events: {
      retain: read.integer('events.retain', 1),
      retainForMs: read.duration('events.retainFor', 1000),
      maxWatcherLag: read.integer('events.maxWatcherLag', 1),
      keepInMemory: read.integer('events.keepInMemory', 0, 1_000_000),
      heartbeatIntervalMs: read.duration('events.heartbeatInterval', 100),
    },
    limits: Object.fromEntries((Object.keys(DEFAULT_REQUEST_LIMITS) as (keyof RequestLimits)[]).map((key) => [key, read.integer(`limits.${key}`, 1, MAX_LIMIT)])) as unknown as RequestLimits,
    logs: { maxFileBytes: read.integer('logs.maxFileBytes', 64 * 1024, 2 ** 40), maxFiles: read.integer('logs.maxFiles', 1, 100) },
    security: {
      allowPrivileged: read.boolean('security.allowPrivileged'),
      allowHostPathMounts: read.boolean('security.allowHostPathMounts'),
      allowHostNetwork: read.boolean('security.allowHostNetwork'),
      allowDevices: read.boolean('security.allowDevices'),
      allowUnconfined: read.boolean('security.allowUnconfined'),
      allowHostPid: read.boolean('security.allowHostPid'),
      allowHostIpc: read.boolean('security.allowHostIpc'),
    },
    metrics: { address: read.optionalString('metrics.address') },
    secrets: { providers: read.secretProviders('secrets.providers') },
    metadata: {
      address: read.optionalString('metadata.address'),
      requestsPerSecond: read.integer('metadata.requestsPerSecond', 1),
      burst: read.integer('metadata.burst', 1),
    },
    network: {
      pauseImage: read.imageReference('network.pauseImage'),
      cni: {
        pluginDirs: read.stringList('network.cni.pluginDirs'),
        ...read.cniNetwork(),
        interfaceName: read.string('network.cni.interfaceName', INTERFACE_NAME),
        pluginTimeoutMs: read.duration('network.cni.pluginTimeout', 100),
        warmPoolSize: read.integer('network.cni.warmPoolSize', 0, 64),
        maxParallelPlugins: read.integer('network.cni.maxParallelPlugins', 0, 1024),
      },
    },
  };
  const checkAddress = (key: string, value: string | undefined, example: string) => {
    if (value === undefined) return;
    const match = /^(.*):(\d{1,5})$/.exec(value);
    if (!match || match[1] === '' || Number(match[2]) > 65535 || Number(match[2]) === 0) throw new ConfigError(key, `must be host:port, e.g. "${example}" (got "${value}")`);
  };
  for (const [key, path] of [['images.dockerConfig', config.images.dockerConfig], ...config.images.credentialHelperDirs.map((d) => ['images.credentialHelperDirs', d])] as const) {
    if (path !== undefined && !path.startsWith('/')) throw new ConfigError(key, `must be an absolute path (got ${JSON.stringify(path)})`);
  }
  config.cluster = read.cluster('cluster', config.grpc);
  checkAddress('metrics.address', config.metrics.address, '127.0.0.1:9464');
  checkAddress('metadata.address', config.metadata.address, '0.0.0.0:51679');
  if (config.events.maxWatcherLag > config.events.retain) {
    throw new ConfigError('events.maxWatcherLag', `must not exceed events.retain (${config.events.retain})`);
  }
  // Never more than the store keeps: a smaller retention needs no setting of its own.
  config.events.keepInMemory = Math.min(config.events.keepInMemory, config.events.retain);
  read.rejectUnknown();
  return config;
}

const MAX_SECRET_PROVIDERS = 32;
const DEFAULT_SECRET_PLUGIN_TIMEOUT_MS = 10_000;

/** The largest value a limit may be set to. */
const MAX_LIMIT = 1024 * 1024 * 1024;

/** Reads typed values by dotted key, remembering which keys were used to report unknown ones. */
class Reader {
  private readonly used = new Set<string>();

  constructor(private readonly raw: Raw) {}

  private get(key: string): unknown {
    this.used.add(key);
    let node: unknown = this.raw;
    for (const part of key.split('.')) node = isObject(node) ? node[part] : undefined;
    return node;
  }

  string(key: string, pattern?: RegExp): string {
    const value = this.get(key);
    if (typeof value !== 'string' || value === '') throw new ConfigError(key, `must be a non-empty string (got ${JSON.stringify(value)})`);
    if (pattern && !pattern.test(value)) throw new ConfigError(key, `"${value}" does not match ${pattern.source}`);
    return value;
  }

  /** An image reference by the distribution grammar. */
  imageReference(key: string): string {
    const value = this.string(key);
    try {
      parseImageReference(value);
    } catch (error) {
      if (error instanceof ImageReferenceError) throw new ConfigError(key, `"${value}" is not an image reference: ${error.message}`);
      throw error;
    }
    return value;
  }

  optionalString(key: string): string | undefined {
    const value = this.get(key);
    if (value === undefined || value === '') return undefined;
    if (typeof value !== 'string') throw new ConfigError(key, `must be a string (got ${JSON.stringify(value)})`);
    return value;
  }

  oneOf<T extends string>(key: string, values: readonly T[], hint = ''): T {
    const value = this.get(key);
    if (!values.includes(value as T)) throw new ConfigError(key, `must be one of ${values.map((v) => `"${v}"`).join(', ')}${hint} (got ${JSON.stringify(value)})`);
    return value as T;
  }

  integer(key: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
    const value = this.get(key);
    const number = typeof value === 'string' ? Number(value) : value;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < min) throw new ConfigError(key, `must be an integer of at least ${min} (got ${JSON.stringify(value)})`);
    if (number > max) throw new ConfigError(key, `must be at most ${max} (got ${JSON.stringify(value)})`);
    return number;
  }

  boolean(key: string): boolean {
    const value = this.get(key);
    if (value === true || value === 'true') return true;
    if (value === false || value === 'false') return false;
    throw new ConfigError(key, `must be true or false (got ${JSON.stringify(value)})`);
  }

  portList(key: string): number[] {
    const value = this.get(key);
    if (!Array.isArray(value) || !value.every((p) => Number.isInteger(p) && p >= 1 && p <= 65535)) {
      throw new ConfigError(key, `must be a list of port numbers (got ${JSON.stringify(value)})`);
    }
    return value as number[];
  }

  stringList(key: string): string[] {
    const value = this.get(key);
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) throw new ConfigError(key, `must be a list of strings (got ${JSON.stringify(value)})`);
    return value as string[];
  }

  /** A list of "name=soft:hard" (-1:-1 for unlimited), at most one per name. */
  ulimits(key: string): Ulimit[] {
    const seen = new Set<string>();
    return this.stringList(key).map((entry) => {
      const match = /^([a-z]+)=(-1|\d{1,15}):(-1|\d{1,15})$/.exec(entry);
      const [name, soft, hard] = [match?.[1] ?? '', Number(match?.[2]), Number(match?.[3])];
      if (!match || !(ULIMIT_NAMES as readonly string[]).includes(name))
        throw new ConfigError(key, `entries must be "name=soft:hard" with name one of ${ULIMIT_NAMES.join(', ')} (got ${JSON.stringify(entry)})`);
      if ((soft === -1) !== (hard === -1) || soft > hard) throw new ConfigError(key, `${JSON.stringify(entry)}: soft must not exceed hard, and -1 (unlimited) must be on both sides`);
      if (seen.has(name)) throw new ConfigError(key, `${name} is set twice`);
      seen.add(name);
      return { name: name as UlimitName, softLimit: soft, hardLimit: hard };
    });
  }

  portRange(key: string): { first: number; last: number } {
    const value = this.get(key);
    const match = typeof value === 'string' ? /^(\d{1,5})-(\d{1,5})$/.exec(value) : null;
    const first = Number(match?.[1]);
    const last = Number(match?.[2]);
    if (!match || first < 1 || last > 65535 || first > last) throw new ConfigError(key, `must be a range such as "49153-65535" (got ${JSON.stringify(value)})`);
    return { first, last };
  }

  duration(key: string, minMs: number): number {
    const value = this.get(key);
    const ms = parseDuration(value);
    if (ms === undefined) throw new ConfigError(key, `must be a duration such as "500ms", "30s", "5m" or "3h" (got ${JSON.stringify(value)})`);
    if (ms < minMs) throw new ConfigError(key, `must be at least ${minMs} ms (got ${JSON.stringify(value)})`);
    // Node's timers hold at most 2^31-1 ms: a longer delay would fire at once, over and over.
    if (ms > MAX_DURATION_MS) throw new ConfigError(key, `must be at most 24d (2147483647 ms; got ${JSON.stringify(value)})`);
    return ms;
  }

  /** A map of registry hosts to { username, password }. */
  registryCredentials(key: string): Record<string, { username: string; password: string }> {
    const value = this.get(key);
    if (!isObject(value)) throw new ConfigError(key, 'must map registry hosts to { "username": …, "password": … }');
    const result: Record<string, { username: string; password: string }> = {};
    for (const [host, entry] of Object.entries(value)) {
      for (const field of ['username', 'password']) this.used.add(`${key}.${host}.${field}`);
      if (!isObject(entry) || typeof entry.username !== 'string' || typeof entry.password !== 'string' || entry.username === '') {
        // The value is not repeated: it holds a password.
        throw new ConfigError(`${key}.${host}`, 'must be { "username": "…", "password": "…" }');
      }
      const unknown = Object.keys(entry).find((k) => k !== 'username' && k !== 'password');
      if (unknown) throw new ConfigError(`${key}.${host}.${unknown}`, 'unknown key');
      result[host] = { username: entry.username, password: entry.password };
    }
    return result;
  }

  /**
   * Secret providers: a list of { prefix, file: { directory } } or { prefix, exec: { command,
   * args, timeout } }, each prefix once; paths absolute.
   */
  secretProviders(key: string): SecretProviderSettings[] {
    const value = this.get(key);
    if (!Array.isArray(value) || value.length > MAX_SECRET_PROVIDERS) throw new ConfigError(key, `must be a list of at most ${MAX_SECRET_PROVIDERS} providers`);
    const prefixes = new Set<string>();
    return value.map((entry: unknown, i) => {
      const at = `${key}[${i}]`;
      if (!isObject(entry)) throw new ConfigError(at, 'must be { "prefix": …, "file": { "directory": … } } or { "prefix": …, "exec": { "command": …, "args": […], "timeout": … } }');
      const unknown = Object.keys(entry).find((k) => !['prefix', 'file', 'exec'].includes(k));
      if (unknown) throw new ConfigError(`${at}.${unknown}`, 'unknown key');
      const prefix = entry.prefix ?? '';
      if (typeof prefix !== 'string' || prefix.length > 256) throw new ConfigError(`${at}.prefix`, 'must be a string of at most 256 characters ("" serves every reference)');
      if (prefixes.has(prefix)) throw new ConfigError(`${at}.prefix`, `${JSON.stringify(prefix)} is served by an earlier provider`);
      prefixes.add(prefix);
      if ((entry.file === undefined) === (entry.exec === undefined)) throw new ConfigError(at, 'needs exactly one of "file" and "exec"');
      const absolute = (field: string, path: unknown) => {
        if (typeof path !== 'string' || !path.startsWith('/')) throw new ConfigError(`${at}.${field}`, `must be an absolute path (got ${JSON.stringify(path)})`);
        return path;
      };
      if (entry.file !== undefined) {
        if (!isObject(entry.file) || Object.keys(entry.file).some((k) => k !== 'directory')) throw new ConfigError(`${at}.file`, 'must be { "directory": "/…" }');
        return { prefix, file: { directory: absolute('file.directory', entry.file.directory) } };
      }
      const exec = entry.exec;
      if (!isObject(exec) || Object.keys(exec).some((k) => !['command', 'args', 'timeout'].includes(k)))
        throw new ConfigError(`${at}.exec`, 'must be { "command": "/…", "args": […], "timeout": "10s" }');
      const args = exec.args ?? [];
      if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) throw new ConfigError(`${at}.exec.args`, 'must be a list of strings');
      const timeoutMs = exec.timeout === undefined ? DEFAULT_SECRET_PLUGIN_TIMEOUT_MS : parseDuration(exec.timeout);
      if (timeoutMs === undefined || timeoutMs < 100 || timeoutMs > 5 * 60_000)
        throw new ConfigError(`${at}.exec.timeout`, `must be a duration from 100ms to 5m (got ${JSON.stringify(exec.timeout)})`);
      return { prefix, exec: { command: absolute('exec.command', exec.command), args: args as string[], timeoutMs } };
    });
  }

  /**
   * The CNI network: a list of the user's, inline (`network.cni.config`) or from a file
   * (`network.cni.configFile`), or berth's default shaped by `network.cni.subnet` and
   * `network.cni.bridge`, whose subnet berth masquerades itself.
   */
  cniNetwork(): { config: NetworkConfigList; withoutPorts?: NetworkConfigList; masquerade?: MasqueradedNetwork } {
    const [inlineKey, fileKey, subnetKey, bridgeKey] = ['network.cni.config', 'network.cni.configFile', 'network.cni.subnet', 'network.cni.bridge'];
    const inline = this.get(inlineKey);
    const file = this.optionalString(fileKey);
    const subnet = this.optionalString(subnetKey);
    const bridge = this.optionalString(bridgeKey);
    if (inline !== undefined && file !== undefined) throw new ConfigError(inlineKey, `set either ${inlineKey} or ${fileKey}, not both`);
    if (inline !== undefined || file !== undefined) {
      const shaping = subnet !== undefined ? subnetKey : bridge !== undefined ? bridgeKey : undefined;
      if (shaping) throw new ConfigError(shaping, `shapes berth's default network only: with ${inline !== undefined ? inlineKey : fileKey}, set it in the network list`);
      return { config: this.networkConfigList(inline, inlineKey, file, fileKey) };
    }
    const shape = { subnet: subnet ?? DEFAULT_NETWORK_SHAPE.subnet, bridge: bridge ?? DEFAULT_NETWORK_SHAPE.bridge };
    const subnetCheck = checkIpv4Subnet(shape.subnet);
    if (!subnetCheck.ok) throw new ConfigError(subnetKey, subnetCheck.detail);
    if (!INTERFACE_NAME.test(shape.bridge)) throw new ConfigError(bridgeKey, `must be an interface name of 1 to 15 letters, digits, "_", "." or "-" (got ${JSON.stringify(shape.bridge)})`);
    const config = this.networkConfigList(defaultNetworkConfigList(shape), inlineKey, undefined, fileKey);
    return { config, withoutPorts: withoutPortMapping(config), masquerade: shape };
  }

  /** A network list given inline at `inlineKey` or in the file at `fileKey`, checked. */
  private networkConfigList(inline: unknown, inlineKey: string, file: string | undefined, fileKey: string): NetworkConfigList {
    try {
      if (file !== undefined) {
        let text: string;
        try {
          text = readFileSync(file, 'utf8');
        } catch (error) {
          throw new ConfigError(fileKey, `cannot read "${file}" (${(error as Error).message})`);
        }
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch (error) {
          throw new ConfigError(fileKey, `"${file}" is not valid JSON (${(error as Error).message})`);
        }
        return parseNetworkConfigList(parsed, file);
      }
      return parseNetworkConfigList(inline, inlineKey);
    } catch (error) {
      if (!(error instanceof NetworkConfigError)) throw error;
      if (file !== undefined) throw new ConfigError(fileKey, `"${file}": ${error.field}: ${error.detail}`);
      throw new ConfigError(`${inlineKey}.${error.field}`, error.detail);
    }
  }

  /**
   * The cluster section, when it is there: endpoints (required), tls, prefix, leaseTtl,
   * attributes and advertiseAddress (by default the gRPC TCP address when it names a host, else
   * the socket as unix://).
   */
  cluster(key: string, grpc: Pick<BerthConfig['grpc'], 'socketPath' | 'tcpAddress'>): ClusterConfig | undefined {
    if (this.get(key) === undefined) return undefined;
    if (!isObject(this.get(key))) throw new ConfigError(key, 'must be an object with at least "endpoints"');
    const endpoints = this.get(`${key}.endpoints`);
    if (!Array.isArray(endpoints) || endpoints.length === 0 || endpoints.length > MAX_ETCD_ENDPOINTS) {
      throw new ConfigError(`${key}.endpoints`, `must list 1 to ${MAX_ETCD_ENDPOINTS} etcd client URLs (got ${JSON.stringify(endpoints)})`);
    }
    for (const endpoint of endpoints) {
      if (typeof endpoint !== 'string' || !/^(https?:\/\/)?[A-Za-z0-9.[\]:-]{1,253}:\d{1,5}$/.test(endpoint)) {
        throw new ConfigError(`${key}.endpoints`, `each must be http(s)://host:port or host:port (got ${JSON.stringify(endpoint)})`);
      }
    }
    const caFile = this.optionalString(`${key}.tls.caFile`);
    const certFile = this.optionalString(`${key}.tls.certFile`);
    const keyFile = this.optionalString(`${key}.tls.keyFile`);
    if ((certFile === undefined) !== (keyFile === undefined)) throw new ConfigError(`${key}.tls`, 'needs both certFile and keyFile, or neither');
    if (certFile !== undefined && caFile === undefined) throw new ConfigError(`${key}.tls.caFile`, 'is needed with a client certificate');
    for (const [field, path] of [
      ['caFile', caFile],
      ['certFile', certFile],
      ['keyFile', keyFile],
    ] as const) {
      if (path !== undefined && !path.startsWith('/')) throw new ConfigError(`${key}.tls.${field}`, `must be an absolute path (got ${JSON.stringify(path)})`);
    }
    const tls = caFile === undefined ? undefined : { caFile, certFile, keyFile };
    if (tls && endpoints.some((e: string) => e.startsWith('http://'))) throw new ConfigError(`${key}.endpoints`, 'must not use http:// when cluster.tls is set');
    const prefix = this.get(`${key}.prefix`) ?? '/berth/';
    if (typeof prefix !== 'string' || !/^\/[A-Za-z0-9_.\/-]{0,127}\/$/.test(prefix)) {
      throw new ConfigError(`${key}.prefix`, `must start and end with "/" and hold at most 128 of [A-Za-z0-9_./-] (got ${JSON.stringify(prefix)})`);
    }
    const ttl = this.get(`${key}.leaseTtl`) === undefined ? 10_000 : this.duration(`${key}.leaseTtl`, 2000);
    if (ttl > 5 * 60_000 || ttl % 1000 !== 0) throw new ConfigError(`${key}.leaseTtl`, `must be whole seconds from 2s to 5m (got ${ttl} ms)`);
    const attributes = this.get(`${key}.attributes`) ?? {};
    if (!isObject(attributes) || Object.keys(attributes).length > MAX_CLUSTER_ATTRIBUTES) throw new ConfigError(`${key}.attributes`, `must map at most ${MAX_CLUSTER_ATTRIBUTES} names to strings`);
    for (const [name, value] of Object.entries(attributes)) {
      if (!/^[A-Za-z0-9][A-Za-z0-9_.\/-]{0,62}$/.test(name)) throw new ConfigError(`${key}.attributes`, `name ${JSON.stringify(name)} must match [A-Za-z0-9][A-Za-z0-9_./-]{0,62}`);
      if ((BUILT_IN_ATTRIBUTES as readonly string[]).includes(name)) throw new ConfigError(`${key}.attributes.${name}`, 'is set by the agent itself');
      if (typeof value !== 'string' || value.length > 256 || value.includes('\0')) throw new ConfigError(`${key}.attributes.${name}`, 'must be a string of at most 256 characters');
    }
    const tcp = grpc.tcpAddress && !/^(0\.0\.0\.0|\[?::\]?):/.test(grpc.tcpAddress) ? grpc.tcpAddress : undefined;
    const advertiseAddress = this.optionalString(`${key}.advertiseAddress`) ?? tcp ?? `unix://${grpc.socketPath}`;
    if (advertiseAddress.length > 512 || !(/^unix:\/\/\//.test(advertiseAddress) || /^[A-Za-z0-9.[\]:-]{1,253}:\d{1,5}$/.test(advertiseAddress))) {
      throw new ConfigError(`${key}.advertiseAddress`, `must be host:port or unix:///path (got ${JSON.stringify(advertiseAddress)})`);
    }
    return { endpoints: endpoints as string[], tls, prefix, leaseTtlMs: ttl, attributes: attributes as Record<string, string>, advertiseAddress };
  }

  rejectUnknown(): void {
    const walk = (node: Raw, prefix: string) => {
      for (const [key, value] of Object.entries(node)) {
        const path = prefix ? `${prefix}.${key}` : key;
        if (isObject(value) && [...this.used].some((u) => u.startsWith(`${path}.`))) walk(value, path);
        else if (!this.used.has(path)) throw new ConfigError(path, 'unknown key');
      }
    };
    walk(this.raw, '');
  }
}
