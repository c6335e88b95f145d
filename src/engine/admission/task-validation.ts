// Longer than most files on purpose: every rule a task definition must meet, in the order they are
// checked (sizes and counts before contents), so the whole of validation reads top to bottom.

import { isIP } from 'node:net';
import { ImageReferenceError, parseImageReference } from '../../runtime/image-reference.js';
import { findCycle } from '../model/dependency-graph.js';
import { InvalidArgumentError, type FieldViolation } from '../errors.js';
import { checkVolumeSizes, validateMountPoints, validateVolumes, validateVolumesFrom, VOLUME_LIMITS, volumesFromInput, type MountInput, type VolumeInput } from './volume-validation.js';
import { checkOptionSizes, validateContainerOptions, type ContainerOptionsInput } from './container-options-validation.js';
import { byteLength, DEFAULT_REQUEST_LIMITS, listBytes, mapBytes, type RequestLimits } from './request-limits.js';
import {
  DEPENDENCY_CONDITIONS,
  NETWORK_MODES,
  PROTOCOLS,
  type ContainerDefinition,
  type DependencyCondition,
  type NamespaceMode,
  type NetworkMode,
  type TaskDefinition,
  type Volume,
} from '../model/task-definition.js';

/**
 * A task definition as received, before validation: enums are strings that may be unknown
 * ("UNSPECIFIED" when the client left them out), optional fields may be missing.
 */
export interface TaskDefinitionInput {
  /** The definition as the client wrote it, without credentials (see TaskDefinition.clientForm). */
  clientForm?: Record<string, unknown>;
  id: string;
  family?: string;
  revision?: number;
  networkMode?: string;
  containers: ContainerDefinitionInput[];
  cpuUnits?: number;
  memoryMib?: number;
  volumes?: VolumeInput[];
  pidMode?: string;
  ipcMode?: string;
}

export interface ContainerDefinitionInput extends ContainerOptionsInput {
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
  portMappings?: { containerPort: number; hostPort?: number; protocol?: string; hostIp?: string; containerPortRange?: string }[];
  essential?: boolean;
  dependsOn?: { containerName: string; condition?: string }[];
  stopTimeoutMs?: number;
  labels?: Record<string, string>;
  registryCredentials?: { username: string; password: string };
  registryCredentialsParameter?: string;
  healthCheck?: { command: string[]; intervalMs?: number; timeoutMs?: number; retries?: number; startPeriodMs?: number };
  restartPolicy?: { enabled: boolean; ignoredExitCodes?: number[]; restartAttemptPeriodMs?: number };
  gpuCount?: number;
  startTimeoutMs?: number;
  pidsLimit?: number;
  mountPoints?: MountInput[];
  volumesFrom?: { sourceContainer: string; readOnly?: boolean }[];
  privileged?: boolean;
}

/** Health check defaults (as Docker and ECS): every 30 s, 5 s to answer, 3 failures, no grace. */
export const HEALTH_CHECK_DEFAULTS = { intervalMs: 30_000, timeoutMs: 5_000, retries: 3, startPeriodMs: 0 };
/** ECS's default restart attempt period. */
export const DEFAULT_RESTART_ATTEMPT_PERIOD_MS = 300_000;

const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;
const CONTAINER_NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
/**
 * Families as ECS allows them (letters, digits, - and _, here also .): the family is passed to
 * CNI plugins in CNI_ARGS, where ";" and "=" would be syntax.
 */
const FAMILY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const MAX_STOP_TIMEOUT_MS = 60 * 60 * 1000;
const MAX_START_TIMEOUT_MS = 24 * 60 * 60 * 1000;
/** Upper bounds of integer fields, each well inside what the runtimes and the kernel take. */
const MAX_CPU_UNITS = 1024 * 1024;
const MAX_MEMORY_MIB = 64 * 1024 * 1024;
const MAX_PIDS_LIMIT = 4 * 1024 * 1024;
const MAX_GPUS = 256;
const MAX_IGNORED_EXIT_CODES = 50;
/** Shows a client's value in a message without repeating an arbitrarily long string. */
function quote(value: string): string {
  return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
}
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

/** Counts an object's keys, stopping as soon as there are more than `limit`. */
function countAtMost(map: Record<string, string> | undefined, limit: number): number {
  let count = 0;
  for (const _ in map ?? {}) if (++count > limit) break;
  return count;
}

/**
 * The first pass, before any content is looked at: the number of containers and of each repeated
 * field, then the total size of maps and lists, then the length of every single string. Costs
 * time in proportion to the limits, not to the request.
 */
function checkSizes(input: TaskDefinitionInput, limits: RequestLimits): FieldViolation[] {
  const v: FieldViolation[] = [];
  const tooMany = (field: string, key: keyof RequestLimits, what: string) => v.push({ field, description: `must have at most ${limits[key]} ${what} (limit limits.${key})` });
  if (input.containers.length > limits.containersPerTask) {
    tooMany(path.task('containers'), 'containersPerTask', 'containers');
    return v;
  }
  /** A string over `max` bytes; `max` is limits.stringBytes unless a fixed bound is given. */
  const long = (field: string, value: string | undefined, max?: number) => {
    const bound = max ?? limits.stringBytes;
    if (value !== undefined && (value.length > bound || byteLength(value) > bound)) {
      v.push({ field, description: `must be at most ${bound} bytes${max === undefined ? ' (limit limits.stringBytes)' : ''}` });
    }
  };
  long(path.task('id'), input.id, 100 * 4);
  long(path.task('family'), input.family, 255 * 4);
  v.push(...checkVolumeSizes(input.volumes, limits.stringBytes));
  input.containers.forEach((c, i) => {
    const at = (field: string) => path.container(i, field);
    if ((c.portMappings?.length ?? 0) > limits.portMappingsPerContainer) tooMany(at('port_mappings'), 'portMappingsPerContainer', 'port mappings');
    // A range counts as one mapping per port.
    else if ((c.portMappings ?? []).reduce((n, p) => n + (p.containerPortRange ? (parsePortRange(p.containerPortRange)?.size ?? 1) : 1), 0) > limits.portMappingsPerContainer) {
      tooMany(at('port_mappings'), 'portMappingsPerContainer', 'port mappings (a container_port_range counts each of its ports)');
    }
    if ((c.mountPoints?.length ?? 0) > limits.mountPointsPerContainer) tooMany(at('mount_points'), 'mountPointsPerContainer', 'mount points');
    if ((c.dependsOn?.length ?? 0) > limits.containersPerTask) tooMany(at('depends_on'), 'containersPerTask', 'containers');
    if ((c.restartPolicy?.ignoredExitCodes?.length ?? 0) > MAX_IGNORED_EXIT_CODES) {
      v.push({ field: at('restart_policy.ignored_exit_codes'), description: `must list at most ${MAX_IGNORED_EXIT_CODES} codes` });
    }
    if (countAtMost(c.environment, limits.environmentEntries) > limits.environmentEntries) tooMany(at('environment'), 'environmentEntries', 'environment variables');
    else if (mapBytes(c.environment ?? {}) > limits.environmentBytes) {
      v.push({ field: at('environment'), description: `must total at most ${limits.environmentBytes} bytes (limit limits.environmentBytes)` });
    }
    if (countAtMost(c.labels, limits.labelsPerContainer) > limits.labelsPerContainer) tooMany(at('labels'), 'labelsPerContainer', 'labels');
    else if (mapBytes(c.labels ?? {}) > limits.labelBytes) v.push({ field: at('labels'), description: `must total at most ${limits.labelBytes} bytes (limit limits.labelBytes)` });
    const lists: [string, string[] | undefined][] = [
      ['command', c.command],
      ['entrypoint', c.entrypoint],
      ['health_check.command', c.healthCheck?.command],
    ];
    for (const [field, list] of lists) {
      if (!list) continue;
      if (list.length > limits.commandArguments) tooMany(at(field), 'commandArguments', 'arguments');
      else if (listBytes(list) > limits.commandBytes) v.push({ field: at(field), description: `must total at most ${limits.commandBytes} bytes (limit limits.commandBytes)` });
    }
    long(at('name'), c.name, 63 * 4);
    long(at('image'), c.image, 1024);
    long(at('working_directory'), c.workingDirectory);
    long(at('user'), c.user);
    long(at('registry_credentials.username'), c.registryCredentials?.username);
    long(at('registry_credentials.password'), c.registryCredentials?.password, 16 * limits.stringBytes);
    long(at('registry_credentials_parameter'), c.registryCredentialsParameter, 2048);
    // Over a limit already: the strings inside the lists are not walked.
    if (v.length > 0) return;
    (c.portMappings ?? []).forEach((p, j) => long(at(`port_mappings[${j}].host_ip`), p.hostIp, 64));
    (c.mountPoints ?? []).forEach((m, j) => {
      long(at(`mount_points[${j}].host_path`), m.hostPath);
      long(at(`mount_points[${j}].container_path`), m.containerPath);
      long(at(`mount_points[${j}].source_volume`), m.sourceVolume, 255);
    });
    if ((c.volumesFrom?.length ?? 0) > VOLUME_LIMITS.volumesFrom) v.push({ field: at('volumes_from'), description: `must have at most ${VOLUME_LIMITS.volumesFrom} entries` });
    (c.volumesFrom ?? []).forEach((f, j) => long(at(`volumes_from[${j}].source_container`), f.sourceContainer, 63 * 4));
    (c.dependsOn ?? []).forEach((d, j) => long(at(`depends_on[${j}].container_name`), d.containerName, 63 * 4));
    v.push(...checkOptionSizes(c, at, limits.stringBytes));
  });
  return v;
}

/** Why a string cannot reach a runtime: a NUL byte ends it early in every C API on the way. */
const hasNul = (value: string) => value.includes('\0');

function validateContainer(input: ContainerDefinitionInput, i: number, networkMode: NetworkMode | undefined, volumes: Volume[], v: FieldViolation[]): ContainerDefinition {
  const at = (field?: string) => path.container(i, field);
  if (!CONTAINER_NAME.test(input.name)) {
    v.push({ field: at('name'), description: `must match ${CONTAINER_NAME.source} (got ${quote(input.name)})` });
  }
  const image = input.image;
  try {
    parseImageReference(image);
  } catch (error) {
    if (!(error instanceof ImageReferenceError)) throw error;
    v.push({ field: at('image'), description: `${quote(image)} is not an image reference: ${error.message}` });
  }

  const integer = (field: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max) v.push({ field: at(field), description: `must be an integer between ${min} and ${max} (got ${value})` });
  };
  const cpuUnits = input.cpuUnits ?? 0;
  integer('cpu_units', cpuUnits, 0, MAX_CPU_UNITS);
  const memoryMib = input.memoryMib ?? 0;
  integer('memory_mib', memoryMib, 0, MAX_MEMORY_MIB);
  if (Number.isInteger(memoryMib) && memoryMib > 0 && memoryMib < MIN_MEMORY_MIB) {
    v.push({ field: at('memory_mib'), description: `must be at least ${MIN_MEMORY_MIB} MiB when set (got ${memoryMib})` });
  }
  const memoryReservationMib = input.memoryReservationMib ?? 0;
  integer('memory_reservation_mib', memoryReservationMib, 0, MAX_MEMORY_MIB);
  if (memoryMib > 0 && memoryReservationMib > memoryMib) {
    v.push({ field: at('memory_reservation_mib'), description: `must not exceed memory_mib (${memoryReservationMib} > ${memoryMib})` });
  }

  const seenHostPorts = new Set<string>();
  const portMappings = expandPortRanges(input.portMappings ?? [], at, v).map(({ mapping: p, index: j }) => {
    const pat = (field: string) => at(`port_mappings[${j}].${field}`);
    const protocol = p.protocol === undefined || p.protocol === 'UNSPECIFIED' ? 'tcp' : oneOf(PROTOCOLS, p.protocol);
    if (!protocol) v.push({ field: pat('protocol'), description: `must be tcp or udp (got ${quote(p.protocol ?? '')})` });
    if (!Number.isInteger(p.containerPort) || p.containerPort < 1 || p.containerPort > 65535) {
      v.push({ field: pat('container_port'), description: `must be between 1 and 65535 (got ${p.containerPort})` });
    }
    const hostPort = p.hostPort ?? 0;
    if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) {
      v.push({ field: pat('host_port'), description: `must be between 0 (dynamic) and 65535 (got ${hostPort})` });
    }
    const hostIp = p.hostIp ?? '';
    if (hostIp !== '' && isIP(hostIp) === 0) v.push({ field: pat('host_ip'), description: `is not an IP address: ${quote(hostIp)}` });
    if (networkMode === 'none') v.push({ field: pat('container_port'), description: 'port mappings need network mode bridge, task or host' });
    if (networkMode === 'host' && hostPort !== 0 && hostPort !== p.containerPort) {
      v.push({ field: pat('host_port'), description: `in host network mode must equal container_port (${p.containerPort}) or be 0` });
    }
    const mapping = { containerPort: p.containerPort, hostPort, protocol: protocol ?? 'tcp', hostIp } satisfies ContainerDefinition['portMappings'][number];
    if (hostPort !== 0) {
      const key = `${hostPort}/${mapping.protocol}`;
      if (seenHostPorts.has(key)) v.push({ field: pat('host_port'), description: `host port ${key} is mapped twice` });
      seenHostPorts.add(key);
    }
    return mapping;
  });

  const dependsOn = (input.dependsOn ?? []).map((d, j) => {
    const condition = oneOf(DEPENDENCY_CONDITIONS, d.condition);
    if (!condition) {
      v.push({ field: at(`depends_on[${j}].condition`), description: `must be one of ${DEPENDENCY_CONDITIONS.join(', ')} (got ${quote(d.condition ?? '')})` });
    }
    return { containerName: d.containerName, condition: condition ?? ('START' as DependencyCondition) };
  });

  const stopTimeoutMs = input.stopTimeoutMs;
  if (stopTimeoutMs !== undefined && (!Number.isFinite(stopTimeoutMs) || stopTimeoutMs < 0 || stopTimeoutMs > MAX_STOP_TIMEOUT_MS)) {
    v.push({ field: at('stop_timeout'), description: `must be between 0 and 1h (got ${stopTimeoutMs} ms)` });
  }
  for (const key in input.environment ?? {}) {
    if (key.length === 0 || key.includes('=') || hasNul(key)) v.push({ field: at('environment'), description: `invalid variable name ${quote(key)}` });
    else if (hasNul(input.environment![key]!)) v.push({ field: at(`environment[${key}]`), description: 'must not contain a NUL byte' });
  }
  for (const key in input.labels ?? {}) {
    if (key.startsWith(RESERVED_LABEL_PREFIX)) v.push({ field: at('labels'), description: `label keys starting with "${RESERVED_LABEL_PREFIX}" are reserved (got ${quote(key)})` });
    else if (key.length === 0 || hasNul(key) || hasNul(input.labels![key]!)) v.push({ field: at('labels'), description: `invalid label ${quote(key)}` });
  }
  for (const field of ['command', 'entrypoint'] as const) {
    if ((input[field] ?? []).some(hasNul)) v.push({ field: at(field), description: 'arguments must not contain a NUL byte' });
  }
  for (const field of ['workingDirectory', 'user'] as const) {
    if (hasNul(input[field] ?? '')) v.push({ field: at(field === 'user' ? 'user' : 'working_directory'), description: 'must not contain a NUL byte' });
  }
  const workingDirectory = input.workingDirectory ?? '';
  if (workingDirectory !== '' && !workingDirectory.startsWith('/')) {
    v.push({ field: at('working_directory'), description: `must be an absolute path (got ${quote(workingDirectory)})` });
  }
  const healthCheck = validateHealthCheck(input.healthCheck, at, v);
  const restartPolicy = validateRestartPolicy(input.restartPolicy, at, v);
  const gpuCount = input.gpuCount ?? 0;
  integer('gpu_count', gpuCount, 0, MAX_GPUS);
  const startTimeoutMs = input.startTimeoutMs;
  if (startTimeoutMs !== undefined && (!Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0 || startTimeoutMs > MAX_START_TIMEOUT_MS)) {
    v.push({ field: at('start_timeout'), description: `must be between 1ms and 24h when set (got ${startTimeoutMs} ms)` });
  }
  const pidsLimit = input.pidsLimit ?? 0;
  integer('pids_limit', pidsLimit, 0, MAX_PIDS_LIMIT);
  const containerPaths = new Set<string>();
  const mountPoints = validateMountPoints(input.mountPoints, volumes, at, containerPaths, v);
  const volumesFrom = volumesFromInput(input.volumesFrom);
  const options = validateContainerOptions(input, at, networkMode, containerPaths, memoryMib > 0, v);
  if (options.disableNetworking && portMappings.length > 0) v.push({ field: at('disable_networking'), description: 'a container without networking cannot map ports' });
  const credentials = input.registryCredentials;
  const credentialsParameter = input.registryCredentialsParameter || undefined;
  if (credentialsParameter !== undefined && credentials && (credentials.username !== '' || credentials.password !== '')) {
    v.push({ field: at('registry_credentials_parameter'), description: 'either registry_credentials or registry_credentials_parameter, not both' });
  } else if (credentialsParameter?.includes('\0')) {
    v.push({ field: at('registry_credentials_parameter'), description: 'must not contain a NUL byte' });
  } else if (credentials && (credentials.username === '') !== (credentials.password === '')) {
    v.push({ field: at('registry_credentials'), description: 'needs both username and password' });
  } else if (credentials && (credentials.username.includes(':') || /[\0\r\n]/.test(credentials.username))) {
    // Basic authentication joins them with ":"; the password itself is never repeated.
    v.push({ field: at('registry_credentials.username'), description: 'must not contain ":", a NUL byte or a line break' });
  }

  return {
    name: input.name,
    image,
    command: input.command ?? [],
    entrypoint: input.entrypoint ?? [],
    environment: input.environment ?? {},
    workingDirectory,
    user: input.user ?? '',
    cpuUnits,
    memoryMib,
    memoryReservationMib,
    portMappings,
    essential: input.essential ?? true,
    dependsOn,
    stopTimeoutMs,
    labels: input.labels ?? {},
    registryCredentials: credentials && credentials.username !== '' ? { username: credentials.username, password: credentials.password } : undefined,
    ...(credentialsParameter ? { registryCredentialsParameter: credentialsParameter } : {}),
    healthCheck,
    restartPolicy,
    gpuCount,
    startTimeoutMs,
    pidsLimit,
    mountPoints,
    privileged: input.privileged ?? false,
    ...options,
    ...(volumesFrom ? { volumesFrom } : {}),
  };
}

/** "8000-8010": the first port and how many; undefined when it is not a range of valid ports. */
function parsePortRange(range: string): { first: number; size: number } | undefined {
  const match = /^(\d{1,5})-(\d{1,5})$/.exec(range);
  const [first, last] = [Number(match?.[1]), Number(match?.[2])];
  if (!match || first < 1 || last > 65535 || first >= last) return undefined;
  return { first, size: last - first + 1 };
}

/** Port mappings with each container_port_range replaced by a mapping per port (dynamic host ports), each with the index it came from. */
function expandPortRanges(input: NonNullable<ContainerDefinitionInput['portMappings']>, at: (field: string) => string, v: FieldViolation[]) {
  return input.flatMap((p, index) => {
    if (!p.containerPortRange) return [{ mapping: p, index }];
    const field = at(`port_mappings[${index}].container_port_range`);
    const range = parsePortRange(p.containerPortRange);
    if (!range) v.push({ field, description: `must be "first-last", two ports with first < last (got ${quote(p.containerPortRange)})` });
    if (p.containerPort) v.push({ field, description: 'is instead of container_port: set one of them' });
    if (p.hostPort) v.push({ field: at(`port_mappings[${index}].host_port`), description: 'must be 0 with a container_port_range: each port gets a dynamic host port' });
    if (!range || p.containerPort || p.hostPort) return [];
    return Array.from({ length: range.size }, (_, k) => ({ mapping: { ...p, containerPort: range.first + k, hostPort: 0 }, index }));
  });
}

const durationOk = (ms: number | undefined, min: number, max: number) => ms === undefined || (Number.isFinite(ms) && ms >= min && ms <= max);

function validateHealthCheck(input: ContainerDefinitionInput['healthCheck'], at: (field?: string) => string, v: FieldViolation[]): ContainerDefinition['healthCheck'] {
  if (!input) return undefined;
  if (input.command.length === 0 || input.command[0] === '') v.push({ field: at('health_check.command'), description: 'must not be empty' });
  else if (input.command.some(hasNul)) v.push({ field: at('health_check.command'), description: 'arguments must not contain a NUL byte' });
  if (!durationOk(input.intervalMs, 100, 86_400_000)) v.push({ field: at('health_check.interval'), description: `must be between 100ms and 24h (got ${input.intervalMs} ms)` });
  if (!durationOk(input.timeoutMs, 100, 3_600_000)) v.push({ field: at('health_check.timeout'), description: `must be between 100ms and 1h (got ${input.timeoutMs} ms)` });
  if (input.retries !== undefined && (!Number.isInteger(input.retries) || input.retries < 0 || input.retries > 100)) {
    v.push({ field: at('health_check.retries'), description: `must be at most 100 (got ${input.retries})` });
  }
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
  ignored.forEach((code, j) => {
    if (!Number.isInteger(code) || code < -(2 ** 31) || code >= 2 ** 31) v.push({ field: at(`restart_policy.ignored_exit_codes[${j}]`), description: `must be a 32-bit integer (got ${code})` });
  });
  if (!durationOk(input.restartAttemptPeriodMs, 0, 86_400_000)) {
    v.push({ field: at('restart_policy.restart_attempt_period'), description: `must be between 0 and 24h (got ${input.restartAttemptPeriodMs} ms)` });
  }
  return { enabled: true, ignoredExitCodes: [...ignored], restartAttemptPeriodMs: input.restartAttemptPeriodMs ?? DEFAULT_RESTART_ATTEMPT_PERIOD_MS };
}

/** Checks the relations between containers: names, dependencies, shared ports, memory, essential. */
function validateRelations(containers: ContainerDefinition[], networkMode: NetworkMode | undefined, taskMemoryMib: number, v: FieldViolation[]): void {
  const byName = new Map<string, { index: number; container: ContainerDefinition }>();
  containers.forEach((c, i) => {
    const first = byName.get(c.name);
    if (first) v.push({ field: path.container(i, 'name'), description: `duplicate container name "${c.name}" (also containers[${first.index}])` });
    else byName.set(c.name, { index: i, container: c });
  });
  // A link is an implicit START dependency (a legacy link needs its target running).
  containers.forEach((c, i) =>
    (c.links ?? []).forEach((link, j) => {
      const field = path.container(i, `links[${j}]`);
      if (link.container === c.name) v.push({ field, description: 'a container cannot link to itself' });
      else if (!byName.has(link.container)) v.push({ field, description: `unknown container ${quote(link.container)}` });
      else if (!c.dependsOn.some((d) => d.containerName === link.container)) c.dependsOn.push({ containerName: link.container, condition: 'START' });
    }),
  );
  let selfDependency = false;
  containers.forEach((c, i) =>
    c.dependsOn.forEach((d, j) => {
      const field = path.container(i, `depends_on[${j}].container_name`);
      const dependency = byName.get(d.containerName)?.container;
      if (d.containerName === c.name) {
        selfDependency = true;
        v.push({ field, description: 'a container cannot depend on itself' });
      } else if (!dependency) v.push({ field, description: `unknown container ${quote(d.containerName)}` });
      else if (d.condition === 'HEALTHY' && !dependency.healthCheck) {
        v.push({ field: path.container(i, `depends_on[${j}].condition`), description: `HEALTHY needs container "${d.containerName}" to have a health_check` });
      }
    }),
  );
  const hostPorts = new Map<string, number>();
  const containerPorts = new Map<string, number>();
  containers.forEach((c, i) =>
    c.portMappings.forEach((p, j) => {
      if (p.hostPort !== 0) {
        const key = `${p.hostPort}/${p.protocol}`;
        const other = hostPorts.get(key);
        if (other !== undefined && other !== i) v.push({ field: path.container(i, `port_mappings[${j}].host_port`), description: `host port ${key} is also mapped by containers[${other}]` });
        hostPorts.set(key, i);
      }
      if (networkMode === 'task') {
        // The containers share one namespace: one port, one listener.
        const key = `${p.containerPort}/${p.protocol}`;
        const other = containerPorts.get(key);
        if (other !== undefined && other !== i) {
          v.push({
            field: path.container(i, `port_mappings[${j}].container_port`),
            description: `${key} is also mapped by containers[${other}]; in network mode task the containers share one namespace`,
          });
        }
        containerPorts.set(key, i);
      }
    }),
  );
  const reserved = containers.reduce((sum, c) => sum + c.memoryReservationMib, 0);
  if (taskMemoryMib > 0 && reserved > taskMemoryMib) {
    v.push({ field: path.task('memory_mib'), description: `is less than the containers' memory_reservation_mib together (${taskMemoryMib} < ${reserved})` });
  }
  containers.forEach((c, i) => {
    if (taskMemoryMib > 0 && c.memoryMib > taskMemoryMib) v.push({ field: path.container(i, 'memory_mib'), description: `exceeds the task's memory_mib (${c.memoryMib} > ${taskMemoryMib})` });
  });
  const cycle = findCycle(selfDependency ? containers.filter((c) => c.dependsOn.every((d) => d.containerName !== c.name)) : containers);
  if (cycle) v.push({ field: path.task('containers'), description: `depends_on forms a cycle: ${cycle.join(' → ')}` });
  if (containers.length > 0 && !containers.some((c) => c.essential)) {
    v.push({ field: path.task('containers'), description: 'at least one container must be essential' });
  }
}

/**
 * Checks a task definition and applies defaults. Throws InvalidArgumentError listing every
 * problem found, each naming its field. Sizes are checked first and alone: a request over a limit
 * is refused before any of its content is looked at. Every later check is linear in the request.
 */
export function validateTaskDefinition(input: TaskDefinitionInput, limits: RequestLimits = DEFAULT_REQUEST_LIMITS): TaskDefinition {
  const sizes = checkSizes(input, limits);
  if (sizes.length > 0) throw new InvalidArgumentError(sizes);
  const v: FieldViolation[] = [];
  if (!TASK_ID.test(input.id)) v.push({ field: path.task('id'), description: `must match ${TASK_ID.source} (got ${quote(input.id)})` });
  const family = input.family ?? '';
  if (family !== '' && !FAMILY.test(family)) v.push({ field: path.task('family'), description: `must match ${FAMILY.source} (got ${quote(family)})` });
  const revision = input.revision ?? 0;
  if (!Number.isInteger(revision) || revision < 0 || revision > 2 ** 32 - 1) v.push({ field: path.task('revision'), description: 'must be a non-negative 32-bit integer' });

  let networkMode: NetworkMode | undefined = input.networkMode === undefined || input.networkMode === 'UNSPECIFIED' ? 'bridge' : oneOf(NETWORK_MODES, input.networkMode);
  if (!networkMode) v.push({ field: path.task('network_mode'), description: `must be one of ${NETWORK_MODES.join(', ')} (got ${quote(input.networkMode ?? '')})` });

  if (input.containers.length === 0) v.push({ field: path.task('containers'), description: 'must have at least one container' });

  const volumes = validateVolumes(input.volumes, v);
  const namespaceMode = (field: 'pid_mode' | 'ipc_mode', value: string | undefined): NamespaceMode | undefined => {
    if (value === undefined || value === 'UNSPECIFIED') return undefined;
    const mode = value.toLowerCase();
    const allowed = field === 'ipc_mode' ? ['task', 'host', 'none'] : ['task', 'host'];
    if (!allowed.includes(mode)) v.push({ field: path.task(field), description: `must be ${allowed.map((m) => m.toUpperCase()).join(', ')} (got ${quote(value)})` });
    else if (mode === 'task' && networkMode !== 'task') v.push({ field: path.task(field), description: 'TASK needs network mode task, whose pause container holds the shared namespaces' });
    return allowed.includes(mode) ? (mode as NamespaceMode) : undefined;
  };
  const pidMode = namespaceMode('pid_mode', input.pidMode);
  const ipcMode = namespaceMode('ipc_mode', input.ipcMode);
  const containers = input.containers.map((c, i) => validateContainer(c, i, networkMode, volumes, v));
  validateVolumesFrom(containers, v);
  if (ipcMode === 'none') {
    containers.forEach((c, i) => {
      if (c.linuxParameters?.sharedMemorySizeMib) v.push({ field: path.container(i, 'linux_parameters.shared_memory_size_mib'), description: 'ipc_mode NONE gives the container no /dev/shm to size' });
    });
  }
  const cpuUnits = input.cpuUnits ?? 0;
  if (!Number.isInteger(cpuUnits) || cpuUnits < 0 || cpuUnits > MAX_CPU_UNITS)
    v.push({ field: path.task('cpu_units'), description: `must be an integer between 0 and ${MAX_CPU_UNITS} (got ${cpuUnits})` });
  const memoryMib = input.memoryMib ?? 0;
  if (!Number.isInteger(memoryMib) || memoryMib < 0 || memoryMib > MAX_MEMORY_MIB)
    v.push({ field: path.task('memory_mib'), description: `must be an integer between 0 and ${MAX_MEMORY_MIB} (got ${memoryMib})` });
  else if (memoryMib > 0 && memoryMib < MIN_MEMORY_MIB) v.push({ field: path.task('memory_mib'), description: `must be at least ${MIN_MEMORY_MIB} MiB when set (got ${memoryMib})` });
  validateRelations(containers, networkMode, memoryMib, v);

  if (v.length > 0) throw new InvalidArgumentError(v);
  networkMode ??= 'bridge';
  return {
    id: input.id,
    family,
    revision,
    networkMode,
    containers,
    cpuUnits,
    memoryMib,
    ...(volumes.length > 0 ? { volumes } : {}),
    ...(pidMode ? { pidMode } : {}),
    ...(ipcMode ? { ipcMode } : {}),
    clientForm: input.clientForm,
  };
}
