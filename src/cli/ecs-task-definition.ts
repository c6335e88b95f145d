import {
  ContainerDefinition as PbContainerDefinition,
  DependencyCondition,
  NamespaceMode,
  NetworkMode,
  TransportProtocol,
  type ContainerDefinition,
  type LogConfiguration,
  type TaskDefinition,
  type Volume,
  VolumeScope,
} from '../gen/berth/agent/v1/task_definition.js';
import type { Duration } from '../gen/google/protobuf/duration.js';

type Json = Record<string, unknown>;

/** An ECS task definition, as registered, or wrapped as `describe-task-definition` prints it. */
export function isEcsTaskDefinition(document: unknown): document is Json {
  if (typeof document !== 'object' || document === null) return false;
  const d = document as Json;
  return Array.isArray(d.containerDefinitions) || (typeof d.taskDefinition === 'object' && d.taskDefinition !== null && Array.isArray((d.taskDefinition as Json).containerDefinitions));
}

export interface EcsConversion {
  definition: TaskDefinition;
  /** Fields berth does not apply, each with its path and why: shown to the user, never dropped silently. */
  warnings: string[];
  /**
   * The fields of `warnings` whose loss changes what a container does (its secrets, its
   * environment files, where its logs go, the data of a volume berth cannot mount…): `berthctl
   * run` refuses them unless told to run without them.
   */
  changesBehaviour: string[];
  /** Fields whose values cannot be used at all. */
  problems: string[];
}

/** Why berth leaves out a field, for the fields it knows it leaves out. */
const NOT_APPLIED: Record<string, string> = {
  taskRoleArn: 'no IAM roles on berth',
  executionRoleArn: 'no IAM roles on berth; give registry credentials in a berth task file',
  requiresCompatibilities: 'launch types mean nothing on one node',
  compatibilities: 'AWS metadata',
  taskDefinitionArn: 'AWS metadata',
  status: 'AWS metadata',
  registeredAt: 'AWS metadata',
  registeredBy: 'AWS metadata',
  deregisteredAt: 'AWS metadata',
  requiresAttributes: 'AWS metadata',
  placementConstraints: 'no placement on one node',
  tags: 'no AWS tagging; use dockerLabels',
  proxyConfiguration: 'App Mesh proxies are not supported',
  inferenceAccelerators: 'not supported',
  ephemeralStorage: "berth does not size the containers' writable layers",
  runtimePlatform: 'the node runs its own platform',
  enableFaultInjection: 'not supported',
  // container definitions
  firelensConfiguration: 'not supported',
  credentialSpecs: 'not supported',
  versionConsistency: 'images are pulled by tag',
  // port mappings
  name: 'port names serve Service Connect, which berth does not have',
  appProtocol: 'Service Connect is not supported',
  // linux parameters
};

/** Fields whose loss changes what the container does; the others left out are AWS's own (IAM, metadata, Service Connect, FireLens, App Mesh). */
const CHANGES_BEHAVIOUR = new Set(['credentialSpecs', 'ephemeralStorage', 'inferenceAccelerators']);

const TASK_FIELDS = new Set(['family', 'revision', 'networkMode', 'containerDefinitions', 'cpu', 'memory', 'volumes', 'pidMode', 'ipcMode']);
const CONTAINER_FIELDS = new Set([
  'name',
  'image',
  'cpu',
  'memory',
  'memoryReservation',
  'portMappings',
  'essential',
  'dependsOn',
  'environment',
  'command',
  'entryPoint',
  'workingDirectory',
  'user',
  'healthCheck',
  'stopTimeout',
  'startTimeout',
  'restartPolicy',
  'dockerLabels',
  'privileged',
  'mountPoints',
  'resourceRequirements',
  'linuxParameters',
  'ulimits',
  'readonlyRootFilesystem',
  'hostname',
  'extraHosts',
  'dnsServers',
  'dnsSearchDomains',
  'volumesFrom',
  'systemControls',
  'dockerSecurityOptions',
  'disableNetworking',
  'links',
  'interactive',
  'pseudoTerminal',
  'secrets',
  'environmentFiles',
  'repositoryCredentials',
  'logConfiguration',
]);
const LINUX_PARAMETER_FIELDS = new Set(['capabilities', 'initProcessEnabled', 'sharedMemorySize', 'tmpfs', 'devices', 'maxSwap', 'swappiness']);

/**
 * ECS's logConfiguration: the driver, its options and secretOptions (references for the agent's
 * secret providers). FireLens (awsfirelens) is AWS's own and is not applied.
 */
function logConfigurationOf(path: string, log: Json | undefined, warn: (text: string) => void): LogConfiguration | undefined {
  if (!log) return undefined;
  if (log.logDriver === 'awsfirelens') {
    warn(`${path}.logConfiguration: not applied (FireLens is AWS's own; the runtime keeps the logs: read them with \`berthctl logs\`)`);
    return undefined;
  }
  const options = Object.fromEntries(Object.entries((log.options as Json | undefined) ?? {}).map(([k, v]) => [k, String(v)]));
  const secretOptions = (Array.isArray(log.secretOptions) ? (log.secretOptions as Json[]) : []).map((s) => ({ name: String(s.name ?? ''), valueFrom: String(s.valueFrom ?? '') }));
  return { logDriver: String(log.logDriver ?? ''), options, secretOptions };
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.map(String) : []);

const seconds = (value: number): Duration => ({ seconds: Math.floor(value), nanos: Math.round((value % 1) * 1e9) });

/** ECS task-level cpu: "1024" or "1 vCPU" (or "0.5 vcpu"), in CPU units. */
function parseTaskCpu(value: unknown): number | undefined {
  const text = String(value).trim();
  const vcpu = /^(\d+(?:\.\d+)?)\s*vcpu$/i.exec(text);
  if (vcpu) return Math.round(Number(vcpu[1]) * 1024);
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

/** ECS task-level memory: "512" (MiB) or "2 GB" (GiB), in MiB. */
function parseTaskMemory(value: unknown): number | undefined {
  const text = String(value).trim();
  const gb = /^(\d+(?:\.\d+)?)\s*gb$/i.exec(text);
  if (gb) return Math.round(Number(gb[1]) * 1024);
  return /^\d+$/.test(text) ? Number(text) : undefined;
}

const NETWORK_MODES: Record<string, NetworkMode> = {
  bridge: NetworkMode.NETWORK_MODE_BRIDGE,
  host: NetworkMode.NETWORK_MODE_HOST,
  none: NetworkMode.NETWORK_MODE_NONE,
  // awsvpc gives a task a network namespace of its own, shared by its containers: berth's "task".
  awsvpc: NetworkMode.NETWORK_MODE_TASK,
};

const CONDITIONS: Record<string, DependencyCondition> = {
  START: DependencyCondition.DEPENDENCY_CONDITION_START,
  COMPLETE: DependencyCondition.DEPENDENCY_CONDITION_COMPLETE,
  SUCCESS: DependencyCondition.DEPENDENCY_CONDITION_SUCCESS,
  HEALTHY: DependencyCondition.DEPENDENCY_CONDITION_HEALTHY,
};

/**
 * Converts an ECS task definition into berth's. Every field is either converted or named in a
 * warning (or, when its value cannot be used, in a problem).
 */
export function convertEcsTaskDefinition(document: Json): EcsConversion {
  const ecs = (Array.isArray(document.containerDefinitions) ? document : document.taskDefinition) as Json;
  const warnings: string[] = [];
  const changesBehaviour: string[] = [];
  /** A field left out whose loss changes what the container does. */
  const lost = (text: string) => {
    warnings.push(text);
    changesBehaviour.push(text);
  };
  const problems: string[] = [];
  const notApplied = (path: string, key: string) => {
    const text = `${path}: not applied (${NOT_APPLIED[key] || 'not supported by berth'})`;
    if (CHANGES_BEHAVIOUR.has(key)) lost(text);
    else warnings.push(text);
  };
  const number = (path: string, value: unknown): number | undefined => {
    if (value === undefined || value === null) return undefined;
    const n = typeof value === 'number' ? value : typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? Number(value) : Number.NaN;
    if (Number.isNaN(n)) problems.push(`${path}: must be a number (got ${JSON.stringify(value)})`);
    return Number.isNaN(n) ? undefined : n;
  };

  for (const key of Object.keys(ecs)) if (!TASK_FIELDS.has(key)) notApplied(key, key);
  /** ECS's pidMode and ipcMode: "task" or "host", and for ipcMode "none". */
  const namespaceMode = (key: 'pidMode' | 'ipcMode', value: unknown): NamespaceMode => {
    if (value === undefined) return NamespaceMode.NAMESPACE_MODE_UNSPECIFIED;
    if (value === 'task') return NamespaceMode.NAMESPACE_MODE_TASK;
    if (value === 'host') return NamespaceMode.NAMESPACE_MODE_HOST;
    if (value === 'none' && key === 'ipcMode') return NamespaceMode.NAMESPACE_MODE_NONE;
    problems.push(`${key}: must be task${key === 'ipcMode' ? ', host or none' : ' or host'} (got ${JSON.stringify(value)})`);
    return NamespaceMode.NAMESPACE_MODE_UNSPECIFIED;
  };

  // Volumes: host paths, task volumes (`host: {}` or a name only) and Docker volumes; EFS and FSx
  // volumes are named in the warnings, and so are the mounts of them.
  const volumes: Volume[] = [];
  (Array.isArray(ecs.volumes) ? (ecs.volumes as Json[]) : []).forEach((volume, i) => {
    const name = String(volume.name ?? '');
    const unsupported = Object.keys(volume).filter((key) => !['name', 'host', 'dockerVolumeConfiguration'].includes(key));
    if (unsupported.length > 0) {
      for (const key of unsupported)
        lost(`volumes[${i}].${key}: not applied (${key === 'configuredAtLaunch' ? 'volumes configured at launch are not supported' : 'only host and Docker volumes are supported'})`);
      lost(`volumes[${i}] ("${name}"): not applied (only host and Docker volumes are supported)`);
      return;
    }
    const host = volume.host as Json | undefined;
    const docker = volume.dockerVolumeConfiguration as Json | undefined;
    const scope = String(docker?.scope ?? 'task').toLowerCase();
    if (docker && scope !== 'task' && scope !== 'shared') problems.push(`volumes[${i}].dockerVolumeConfiguration.scope: must be task or shared (got ${JSON.stringify(docker.scope)})`);
    const stringMap = (value: unknown) => Object.fromEntries(Object.entries((value as Json | undefined) ?? {}).map(([k, v]) => [k, String(v)]));
    volumes.push({
      name,
      host: host && typeof host.sourcePath === 'string' ? { sourcePath: host.sourcePath } : undefined,
      dockerVolumeConfiguration: docker && {
        scope: scope === 'shared' ? VolumeScope.VOLUME_SCOPE_SHARED : VolumeScope.VOLUME_SCOPE_TASK,
        autoprovision: docker.autoprovision === true,
        driver: String(docker.driver ?? ''),
        driverOpts: stringMap(docker.driverOpts),
        labels: stringMap(docker.labels),
      },
    });
  });
  const volumeNames = new Set(volumes.map((v) => v.name));

  let networkMode = NetworkMode.NETWORK_MODE_BRIDGE;
  if (ecs.networkMode !== undefined) {
    const mode = NETWORK_MODES[String(ecs.networkMode)];
    if (mode === undefined) problems.push(`networkMode: unknown network mode ${JSON.stringify(ecs.networkMode)} (bridge, host, none or awsvpc)`);
    else networkMode = mode;
  }

  const containers = (ecs.containerDefinitions as Json[]).map((c, i) => convertContainer(c, `containerDefinitions[${i}]`));

  function convertContainer(c: Json, path: string): ContainerDefinition {
    for (const key of Object.keys(c)) if (!CONTAINER_FIELDS.has(key)) notApplied(`${path}.${key}`, key);
    const environment: Record<string, string> = {};
    if (Array.isArray(c.environment)) for (const { name, value } of c.environment as Json[]) environment[String(name)] = String(value ?? '');
    const container: ContainerDefinition = {
      ...PbContainerDefinition.fromPartial({}),
      name: String(c.name ?? ''),
      image: String(c.image ?? ''),
      command: Array.isArray(c.command) ? c.command.map(String) : [],
      entrypoint: Array.isArray(c.entryPoint) ? c.entryPoint.map(String) : [],
      environment,
      workingDirectory: String(c.workingDirectory ?? ''),
      user: String(c.user ?? ''),
      cpuUnits: number(`${path}.cpu`, c.cpu) ?? 0,
      memoryMib: number(`${path}.memory`, c.memory) ?? 0,
      memoryReservationMib: number(`${path}.memoryReservation`, c.memoryReservation) ?? 0,
      portMappings: [],
      essential: typeof c.essential === 'boolean' ? c.essential : undefined,
      dependsOn: [],
      stopTimeout: c.stopTimeout !== undefined ? seconds(number(`${path}.stopTimeout`, c.stopTimeout) ?? 0) : undefined,
      labels: Object.fromEntries(Object.entries((c.dockerLabels as Json | undefined) ?? {}).map(([k, v]) => [k, String(v)])),
      registryCredentials: undefined,
      healthCheck: undefined,
      restartPolicy: undefined,
      gpuCount: 0,
      startTimeout: c.startTimeout !== undefined ? seconds(number(`${path}.startTimeout`, c.startTimeout) ?? 0) : undefined,
      pidsLimit: 0,
      mountPoints: [],
      privileged: c.privileged === true,
      ulimits: (Array.isArray(c.ulimits) ? (c.ulimits as Json[]) : []).map((u, j) => ({
        name: String(u.name ?? ''),
        softLimit: number(`${path}.ulimits[${j}].softLimit`, u.softLimit) ?? 0,
        hardLimit: number(`${path}.ulimits[${j}].hardLimit`, u.hardLimit) ?? 0,
      })),
      readonlyRootFilesystem: c.readonlyRootFilesystem === true,
      hostname: String(c.hostname ?? ''),
      extraHosts: (Array.isArray(c.extraHosts) ? (c.extraHosts as Json[]) : []).map((h) => ({ hostname: String(h.hostname ?? ''), ipAddress: String(h.ipAddress ?? '') })),
      dnsServers: strings(c.dnsServers),
      dnsSearchDomains: strings(c.dnsSearchDomains),
      systemControls: (Array.isArray(c.systemControls) ? (c.systemControls as Json[]) : []).map((s) => ({ namespace: String(s.namespace ?? ''), value: String(s.value ?? '') })),
      dockerSecurityOptions: strings(c.dockerSecurityOptions),
      disableNetworking: c.disableNetworking === true,
      links: strings(c.links),
      interactive: c.interactive === true,
      pseudoTerminal: c.pseudoTerminal === true,
      // References as they are: the agent's secret providers route them by prefix (an SSM or
      // Secrets Manager ARN to an exec plugin that asks AWS).
      secrets: (Array.isArray(c.secrets) ? (c.secrets as Json[]) : []).map((s) => ({ name: String(s.name ?? ''), valueFrom: String(s.valueFrom ?? '') })),
      // Secrets Manager's {"username","password"} secret, resolved by the agent's secret providers.
      registryCredentialsParameter: String((c.repositoryCredentials as Json | undefined)?.credentialsParameter ?? ''),
      logConfiguration: logConfigurationOf(path, c.logConfiguration as Json | undefined, (text) => warnings.push(text)),
      environmentFiles: (Array.isArray(c.environmentFiles) ? (c.environmentFiles as Json[]) : []).map((f) => String(f.value ?? '')),
    };
    const linux = c.linuxParameters as Json | undefined;
    if (linux) {
      for (const key of Object.keys(linux)) if (!LINUX_PARAMETER_FIELDS.has(key)) notApplied(`${path}.linuxParameters.${key}`, key);
      const capabilities = linux.capabilities as Json | undefined;
      container.linuxParameters = {
        capabilities: capabilities && { add: strings(capabilities.add), drop: strings(capabilities.drop) },
        initProcessEnabled: linux.initProcessEnabled === true,
        sharedMemorySizeMib: number(`${path}.linuxParameters.sharedMemorySize`, linux.sharedMemorySize) ?? 0,
        tmpfs: (Array.isArray(linux.tmpfs) ? (linux.tmpfs as Json[]) : []).map((t, j) => ({
          containerPath: String(t.containerPath ?? ''),
          sizeMib: number(`${path}.linuxParameters.tmpfs[${j}].size`, t.size) ?? 0,
          mountOptions: strings(t.mountOptions),
        })),
        devices: (Array.isArray(linux.devices) ? (linux.devices as Json[]) : []).map((d) => ({
          hostPath: String(d.hostPath ?? ''),
          containerPath: String(d.containerPath ?? ''),
          permissions: strings(d.permissions),
        })),
        maxSwapMib: number(`${path}.linuxParameters.maxSwap`, linux.maxSwap),
        swappiness: number(`${path}.linuxParameters.swappiness`, linux.swappiness),
      };
    }
    (Array.isArray(c.portMappings) ? (c.portMappings as Json[]) : []).forEach((p, j) => {
      const at = `${path}.portMappings[${j}]`;
      for (const key of Object.keys(p)) if (!['containerPort', 'hostPort', 'protocol', 'containerPortRange'].includes(key)) notApplied(`${at}.${key}`, key);
      if (p.containerPort === undefined && p.containerPortRange === undefined) return;
      const protocol = String(p.protocol ?? 'tcp').toLowerCase();
      if (protocol !== 'tcp' && protocol !== 'udp') problems.push(`${at}.protocol: must be tcp or udp (got ${JSON.stringify(p.protocol)})`);
      container.portMappings.push({
        containerPort: number(`${at}.containerPort`, p.containerPort) ?? 0,
        hostPort: number(`${at}.hostPort`, p.hostPort) ?? 0,
        protocol: protocol === 'udp' ? TransportProtocol.TRANSPORT_PROTOCOL_UDP : TransportProtocol.TRANSPORT_PROTOCOL_TCP,
        hostIp: '',
        containerPortRange: String(p.containerPortRange ?? ''),
      });
    });
    (Array.isArray(c.dependsOn) ? (c.dependsOn as Json[]) : []).forEach((d, j) => {
      const condition = CONDITIONS[String(d.condition ?? '').toUpperCase()];
      if (condition === undefined) problems.push(`${path}.dependsOn[${j}].condition: must be START, COMPLETE, SUCCESS or HEALTHY (got ${JSON.stringify(d.condition)})`);
      else container.dependsOn.push({ containerName: String(d.containerName ?? ''), condition });
    });
    const health = c.healthCheck as Json | undefined;
    if (health) {
      const command = Array.isArray(health.command) ? health.command.map(String) : [];
      // ["CMD-SHELL", "curl -f …"] runs through a shell; ["CMD", "curl", "-f", …] as is.
      const argv = command[0] === 'CMD-SHELL' ? ['sh', '-c', command.slice(1).join(' ')] : command[0] === 'CMD' ? command.slice(1) : command;
      container.healthCheck = {
        command: argv,
        interval: seconds(number(`${path}.healthCheck.interval`, health.interval) ?? 30),
        timeout: seconds(number(`${path}.healthCheck.timeout`, health.timeout) ?? 5),
        retries: number(`${path}.healthCheck.retries`, health.retries) ?? 3,
        startPeriod: seconds(number(`${path}.healthCheck.startPeriod`, health.startPeriod) ?? 0),
      };
    }
    const restart = c.restartPolicy as Json | undefined;
    if (restart) {
      container.restartPolicy = {
        enabled: restart.enabled === true,
        ignoredExitCodes: Array.isArray(restart.ignoredExitCodes) ? restart.ignoredExitCodes.map(Number) : [],
        restartAttemptPeriod: restart.restartAttemptPeriod !== undefined ? seconds(number(`${path}.restartPolicy.restartAttemptPeriod`, restart.restartAttemptPeriod) ?? 0) : undefined,
      };
    }
    (Array.isArray(c.mountPoints) ? (c.mountPoints as Json[]) : []).forEach((m, j) => {
      const source = String(m.sourceVolume ?? '');
      if (!volumeNames.has(source)) {
        lost(`${path}.mountPoints[${j}]: not applied (volume "${source}" is not one berth applies)`);
        return;
      }
      container.mountPoints.push({ hostPath: '', sourceVolume: source, containerPath: String(m.containerPath ?? ''), readOnly: m.readOnly === true });
    });
    container.volumesFrom = (Array.isArray(c.volumesFrom) ? (c.volumesFrom as Json[]) : []).map((f) => ({ sourceContainer: String(f.sourceContainer ?? ''), readOnly: f.readOnly === true }));
    (Array.isArray(c.resourceRequirements) ? (c.resourceRequirements as Json[]) : []).forEach((r, j) => {
      if (r.type === 'GPU') container.gpuCount = number(`${path}.resourceRequirements[${j}].value`, r.value) ?? 0;
      else lost(`${path}.resourceRequirements[${j}]: not applied (${String(r.type)} is not supported)`);
    });
    return container;
  }

  const cpu = ecs.cpu === undefined ? 0 : parseTaskCpu(ecs.cpu);
  if (cpu === undefined) problems.push(`cpu: must be CPU units ("1024") or vCPUs ("1 vCPU") (got ${JSON.stringify(ecs.cpu)})`);
  const memory = ecs.memory === undefined ? 0 : parseTaskMemory(ecs.memory);
  if (memory === undefined) problems.push(`memory: must be MiB ("512") or GB ("2 GB") (got ${JSON.stringify(ecs.memory)})`);
  return {
    definition: {
      id: '',
      family: String(ecs.family ?? ''),
      revision: number('revision', ecs.revision) ?? 0,
      networkMode,
      containers,
      cpuUnits: cpu ?? 0,
      memoryMib: memory ?? 0,
      volumes,
      pidMode: namespaceMode('pidMode', ecs.pidMode),
      ipcMode: namespaceMode('ipcMode', ecs.ipcMode),
    },
    warnings,
    changesBehaviour,
    problems,
  };
}
