import { isIP } from 'node:net';
import { findCycle } from './dependency-graph.js';
import { InvalidArgumentError, type FieldViolation } from './errors.js';
import {
  DEPENDENCY_CONDITIONS,
  NETWORK_MODES,
  PROTOCOLS,
  type ContainerDefinition,
  type DependencyCondition,
  type NetworkMode,
  type Protocol,
  type TaskDefinition,
} from './task-definition.js';

/**
 * A task definition as received, before validation: enums are strings that may be unknown
 * ("UNSPECIFIED" when the client left them out), optional fields may be missing.
 */
export interface TaskDefinitionInput {
  id: string;
  family?: string;
  revision?: number;
  networkMode?: string;
  containers: ContainerDefinitionInput[];
  cpuUnits?: number;
  memoryMib?: number;
}

export interface ContainerDefinitionInput {
  name: string;
  image: string;
  command?: string[];
  entrypoint?: string[];
  environment?: Record<string, string>;
  workingDirectory?: string;
  user?: string;
  cpuUnits?: number;
  memoryMib?: number;
  memoryReservationMib?: number;
  portMappings?: { containerPort: number; hostPort?: number; protocol?: string; hostIp?: string }[];
  essential?: boolean;
  dependsOn?: { containerName: string; condition?: string }[];
  stopTimeoutMs?: number;
  labels?: Record<string, string>;
  registryCredentials?: { username: string; password: string };
  healthCheck?: { command: string[]; intervalMs?: number; timeoutMs?: number; retries?: number; startPeriodMs?: number };
  restartPolicy?: { enabled: boolean; ignoredExitCodes?: number[]; restartAttemptPeriodMs?: number };
  gpuCount?: number;
  startTimeoutMs?: number;
  pidsLimit?: number;
  mountPoints?: { hostPath: string; containerPath: string; readOnly?: boolean }[];
  privileged?: boolean;
}

/** Health check defaults (as Docker and ECS): every 30 s, 5 s to answer, 3 failures, no grace. */
export const HEALTH_CHECK_DEFAULTS = { intervalMs: 30_000, timeoutMs: 5_000, retries: 3, startPeriodMs: 0 };
/** ECS's default restart attempt period. */
export const DEFAULT_RESTART_ATTEMPT_PERIOD_MS = 300_000;

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const MAX_CONTAINERS = 64;
const MAX_STOP_TIMEOUT_MS = 60 * 60 * 1000;
/** Docker refuses memory limits below 6 MiB. */
const MIN_MEMORY_MIB = 6;
/** Label keys the agent writes itself. */
export const RESERVED_LABEL_PREFIX = 'berth.';

/** Field names as the client wrote them (protobuf names), so errors point at the request. */
const path = {
  task: (field: string) => `task.${field}`,
  container: (i: number, field?: string) => `task.containers[${i}]${field ? `.${field}` : ''}`,
};

function oneOf<T extends string>(values: readonly T[], value: string | undefined): T | undefined {
  const lower = value?.toLowerCase();
  return values.find((v) => v.toLowerCase() === lower);
}

function validateContainer(input: ContainerDefinitionInput, i: number, networkMode: NetworkMode | undefined, v: FieldViolation[]): ContainerDefinition {
  const at = (field?: string) => path.container(i, field);
  if (!CONTAINER_NAME.test(input.name)) {
    v.push({ field: at('name'), description: `must match ${CONTAINER_NAME.source} (got "${input.name}")` });
  }
  const image = input.image.trim();
  if (image.length === 0) v.push({ field: at('image'), description: 'must not be empty' });
  else if (/\s/.test(image) || image.length > 512) v.push({ field: at('image'), description: `is not an image reference: "${input.image}"` });

  const cpuUnits = input.cpuUnits ?? 0;
  if (!Number.isInteger(cpuUnits) || cpuUnits < 0) v.push({ field: at('cpu_units'), description: `must be a non-negative integer (got ${cpuUnits})` });
  const memoryMib = input.memoryMib ?? 0;
  if (!Number.isInteger(memoryMib) || memoryMib < 0) v.push({ field: at('memory_mib'), description: `must not be negative (got ${memoryMib})` });
  else if (memoryMib > 0 && memoryMib < MIN_MEMORY_MIB) v.push({ field: at('memory_mib'), description: `must be at least ${MIN_MEMORY_MIB} MiB when set (got ${memoryMib})` });
  const memoryReservationMib = input.memoryReservationMib ?? 0;
  if (!Number.isInteger(memoryReservationMib) || memoryReservationMib < 0) {
    v.push({ field: at('memory_reservation_mib'), description: `must not be negative (got ${memoryReservationMib})` });
  } else if (memoryMib > 0 && memoryReservationMib > memoryMib) {
    v.push({ field: at('memory_reservation_mib'), description: `must not exceed memory_mib (${memoryReservationMib} > ${memoryMib})` });
  }

  const portMappings = (input.portMappings ?? []).map((p, j) => {
    const pat = (field: string) => at(`port_mappings[${j}].${field}`);
    const protocol = p.protocol === undefined || p.protocol === 'UNSPECIFIED' ? 'tcp' : oneOf(PROTOCOLS, p.protocol);
    if (!protocol) v.push({ field: pat('protocol'), description: `must be tcp or udp (got "${p.protocol}")` });
    if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) {
      v.push({ field: pat('container_port'), description: `must be between 1 and 65535 (got ${p.containerPort})` });
    }
    const hostPort = p.hostPort ?? 0;
    if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) {
      v.push({ field: pat('host_port'), description: `must be between 0 (dynamic) and 65535 (got ${hostPort})` });
    }
    const hostIp = p.hostIp ?? '';
    if (hostIp !== '' && isIP(hostIp) === 0) v.push({ field: pat('host_ip'), description: `is not an IP address: "${hostIp}"` });
    if (networkMode === 'none') v.push({ field: pat('container_port'), description: 'port mappings need network mode bridge, task or host' });
    if (networkMode === 'host' && hostPort !== 0 && hostPort !== p.containerPort) {
      v.push({ field: pat('host_port'), description: `in host network mode must equal container_port (${p.containerPort}) or be 0` });
    }
    return { containerPort: p.containerPort, hostPort, protocol: protocol ?? 'tcp', hostIp } satisfies ContainerDefinition['portMappings'][number];
  });
  const seenHostPorts = new Set<string>();
  portMappings.forEach((p, j) => {
    if (p.hostPort === 0) return;
    const key = `${p.hostPort}/${p.protocol}`;
    if (seenHostPorts.has(key)) v.push({ field: at(`port_mappings[${j}].host_port`), description: `host port ${key} is mapped twice` });
    seenHostPorts.add(key);
  });

  const dependsOn = (input.dependsOn ?? []).map((d, j) => {
    const condition = oneOf(DEPENDENCY_CONDITIONS, d.condition);
    if (!condition) {
      v.push({ field: at(`depends_on[${j}].condition`), description: `must be one of ${DEPENDENCY_CONDITIONS.join(', ')} (got "${d.condition ?? ''}")` });
    }
    return { containerName: d.containerName, condition: condition ?? ('START' as DependencyCondition) };
  });

  const stopTimeoutMs = input.stopTimeoutMs;
  if (stopTimeoutMs !== undefined && (!Number.isFinite(stopTimeoutMs) || stopTimeoutMs < 0 || stopTimeoutMs > MAX_STOP_TIMEOUT_MS)) {
    v.push({ field: at('stop_timeout'), description: `must be between 0 and 1h (got ${stopTimeoutMs} ms)` });
  }
  for (const key of Object.keys(input.environment ?? {})) {
    if (key.length === 0 || key.includes('=')) v.push({ field: at('environment'), description: `invalid variable name "${key}"` });
  }
  for (const key of Object.keys(input.labels ?? {})) {
    if (key.startsWith(RESERVED_LABEL_PREFIX)) v.push({ field: at('labels'), description: `label keys starting with "${RESERVED_LABEL_PREFIX}" are reserved (got "${key}")` });
  }
  const healthCheck = validateHealthCheck(input.healthCheck, at, v);
  const restartPolicy = validateRestartPolicy(input.restartPolicy, at, v);
  const gpuCount = input.gpuCount ?? 0;
  if (!Number.isInteger(gpuCount) || gpuCount < 0) v.push({ field: at('gpu_count'), description: `must be a non-negative integer (got ${gpuCount})` });
  const startTimeoutMs = input.startTimeoutMs;
  if (startTimeoutMs !== undefined && (!Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0)) {
    v.push({ field: at('start_timeout'), description: `must be positive when set (got ${startTimeoutMs} ms)` });
  }
  const pidsLimit = input.pidsLimit ?? 0;
  if (!Number.isInteger(pidsLimit) || pidsLimit < 0) v.push({ field: at('pids_limit'), description: `must be a non-negative integer (got ${pidsLimit})` });
  const mountPoints = (input.mountPoints ?? []).map((m, j) => {
    if (!m.hostPath.startsWith('/')) v.push({ field: at(`mount_points[${j}].host_path`), description: `must be an absolute path (got "${m.hostPath}")` });
    if (!m.containerPath.startsWith('/') || m.containerPath === '/') {
      v.push({ field: at(`mount_points[${j}].container_path`), description: `must be an absolute path other than / (got "${m.containerPath}")` });
    }
    return { hostPath: m.hostPath, containerPath: m.containerPath, readOnly: m.readOnly ?? false };
  });
  mountPoints.forEach((m, j) => {
    if (mountPoints.findIndex((o) => o.containerPath === m.containerPath) < j) {
      v.push({ field: at(`mount_points[${j}].container_path`), description: `"${m.containerPath}" is mounted twice` });
    }
  });
  const credentials = input.registryCredentials;
  if (credentials && (credentials.username === '') !== (credentials.password === '')) {
    v.push({ field: at('registry_credentials'), description: 'needs both username and password' });
  }

  return {
    name: input.name,
    image,
    command: input.command ?? [],
    entrypoint: input.entrypoint ?? [],
    environment: input.environment ?? {},
    workingDirectory: input.workingDirectory ?? '',
    user: input.user ?? '',
    cpuUnits,
    memoryMib,
    memoryReservationMib,
    portMappings,
    essential: input.essential ?? true,
    dependsOn,
    stopTimeoutMs,
    labels: input.labels ?? {},
    registryCredentials: credentials && credentials.username !== '' ? { ...credentials } : undefined,
    healthCheck,
    restartPolicy,
    gpuCount,
    startTimeoutMs,
    pidsLimit,
    mountPoints,
    privileged: input.privileged ?? false,
  };
}

const durationOk = (ms: number | undefined, min: number, max: number) => ms === undefined || (Number.isFinite(ms) && ms >= min && ms <= max);

function validateHealthCheck(input: ContainerDefinitionInput['healthCheck'], at: (field?: string) => string, v: FieldViolation[]): ContainerDefinition['healthCheck'] {
  if (!input) return undefined;
  if (input.command.length === 0 || input.command[0] === '') v.push({ field: at('health_check.command'), description: 'must not be empty' });
  if (!durationOk(input.intervalMs, 100, 86_400_000)) v.push({ field: at('health_check.interval'), description: `must be between 100ms and 24h (got ${input.intervalMs} ms)` });
  if (!durationOk(input.timeoutMs, 100, 3_600_000)) v.push({ field: at('health_check.timeout'), description: `must be between 100ms and 1h (got ${input.timeoutMs} ms)` });
  if (input.retries !== undefined && (!Number.isInteger(input.retries) || input.retries > 100)) v.push({ field: at('health_check.retries'), description: `must be at most 100 (got ${input.retries})` });
  if (!durationOk(input.startPeriodMs, 0, 86_400_000)) v.push({ field: at('health_check.start_period'), description: `must be between 0 and 24h (got ${input.startPeriodMs} ms)` });
  return {
    command: [...input.command],
    intervalMs: input.intervalMs ?? HEALTH_CHECK_DEFAULTS.intervalMs,
    timeoutMs: input.timeoutMs ?? HEALTH_CHECK_DEFAULTS.timeoutMs,
    retries: input.retries || HEALTH_CHECK_DEFAULTS.retries,
    startPeriodMs: input.startPeriodMs ?? HEALTH_CHECK_DEFAULTS.startPeriodMs,
  };
}

function validateRestartPolicy(input: ContainerDefinitionInput['restartPolicy'], at: (field?: string) => string, v: FieldViolation[]): ContainerDefinition['restartPolicy'] {
  if (!input || !input.enabled) return undefined;
  const ignored = input.ignoredExitCodes ?? [];
  if (ignored.length > 50) v.push({ field: at('restart_policy.ignored_exit_codes'), description: 'must list at most 50 codes' });
  if (!durationOk(input.restartAttemptPeriodMs, 0, 86_400_000)) {
    v.push({ field: at('restart_policy.restart_attempt_period'), description: `must be between 0 and 24h (got ${input.restartAttemptPeriodMs} ms)` });
  }
  return { enabled: true, ignoredExitCodes: [...ignored], restartAttemptPeriodMs: input.restartAttemptPeriodMs ?? DEFAULT_RESTART_ATTEMPT_PERIOD_MS };
}

/**
 * Checks a task definition and applies defaults. Throws InvalidArgumentError listing every
 * problem found, each naming its field.
 */
export function validateTaskDefinition(input: TaskDefinitionInput): TaskDefinition {
  const v: FieldViolation[] = [];
  if (!TASK_ID.test(input.id)) v.push({ field: path.task('id'), description: `must match ${TASK_ID.source} (got "${input.id}")` });
  const family = input.family ?? '';
  if (family.length > 255) v.push({ field: path.task('family'), description: 'must be at most 255 characters' });
  const revision = input.revision ?? 0;
  if (!Number.isInteger(revision) || revision < 0) v.push({ field: path.task('revision'), description: 'must be a non-negative integer' });

  let networkMode: NetworkMode | undefined = input.networkMode === undefined || input.networkMode === 'UNSPECIFIED' ? 'bridge' : oneOf(NETWORK_MODES, input.networkMode);
  if (!networkMode) v.push({ field: path.task('network_mode'), description: `must be one of ${NETWORK_MODES.join(', ')} (got "${input.networkMode}")` });

  if (input.containers.length === 0) v.push({ field: path.task('containers'), description: 'must have at least one container' });
  if (input.containers.length > MAX_CONTAINERS) v.push({ field: path.task('containers'), description: `must have at most ${MAX_CONTAINERS} containers` });

  const containers = input.containers.map((c, i) => validateContainer(c, i, networkMode, v));

  const firstIndex = new Map<string, number>();
  containers.forEach((c, i) => {
    if (firstIndex.has(c.name)) v.push({ field: path.container(i, 'name'), description: `duplicate container name "${c.name}" (also containers[${firstIndex.get(c.name)}])` });
    else firstIndex.set(c.name, i);
  });
  containers.forEach((c, i) =>
    c.dependsOn.forEach((d, j) => {
      const field = path.container(i, `depends_on[${j}].container_name`);
      if (d.containerName === c.name) v.push({ field, description: 'a container cannot depend on itself' });
      else if (!firstIndex.has(d.containerName)) v.push({ field, description: `unknown container "${d.containerName}"` });
    }),
  );
  const hostPorts = new Map<string, number>();
  containers.forEach((c, i) =>
    c.portMappings.forEach((p, j) => {
      if (p.hostPort === 0) return;
      const key = `${p.hostPort}/${p.protocol}`;
      const other = hostPorts.get(key);
      if (other !== undefined && other !== i) v.push({ field: path.container(i, `port_mappings[${j}].host_port`), description: `host port ${key} is also mapped by containers[${other}]` });
      hostPorts.set(key, i);
    }),
  );
  if (networkMode === 'task') {
    // The containers share one namespace: one port, one listener.
    const containerPorts = new Map<string, number>();
    containers.forEach((c, i) =>
      c.portMappings.forEach((p, j) => {
        const key = `${p.containerPort}/${p.protocol}`;
        const other = containerPorts.get(key);
        if (other !== undefined && other !== i) {
          v.push({ field: path.container(i, `port_mappings[${j}].container_port`), description: `${key} is also mapped by containers[${other}]; in network mode task the containers share one namespace` });
        }
        containerPorts.set(key, i);
      }),
    );
  }
  containers.forEach((c, i) =>
    c.dependsOn.forEach((d, j) => {
      if (d.condition !== 'HEALTHY') return;
      const dependency = containers.find((x) => x.name === d.containerName);
      if (dependency && !dependency.healthCheck) {
        v.push({ field: path.container(i, `depends_on[${j}].condition`), description: `HEALTHY needs container "${d.containerName}" to have a health_check` });
      }
    }),
  );
  const cpuUnits = input.cpuUnits ?? 0;
  if (!Number.isInteger(cpuUnits) || cpuUnits < 0) v.push({ field: path.task('cpu_units'), description: `must be a non-negative integer (got ${cpuUnits})` });
  const memoryMib = input.memoryMib ?? 0;
  if (!Number.isInteger(memoryMib) || memoryMib < 0) v.push({ field: path.task('memory_mib'), description: `must not be negative (got ${memoryMib})` });
  containers.forEach((c, i) => {
    if (memoryMib > 0 && c.memoryMib > memoryMib) v.push({ field: path.container(i, 'memory_mib'), description: `exceeds the task's memory_mib (${c.memoryMib} > ${memoryMib})` });
  });
  const cycle = findCycle(containers.filter((c) => c.dependsOn.every((d) => d.containerName !== c.name)));
  if (cycle) v.push({ field: path.task('containers'), description: `depends_on forms a cycle: ${cycle.join(' → ')}` });
  if (containers.length > 0 && !containers.some((c) => c.essential)) {
    v.push({ field: path.task('containers'), description: 'at least one container must be essential' });
  }

  if (v.length > 0) throw new InvalidArgumentError(v);
  networkMode ??= 'bridge';
  return { id: input.id, family, revision, networkMode, containers, cpuUnits, memoryMib };
}
