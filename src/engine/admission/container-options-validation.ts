import { isIP } from 'node:net';
import { constants } from 'node:os';
import { LINUX_CAPABILITIES } from '../../runtime/capabilities.js';
import type { FieldViolation } from '../errors.js';
import {
  DEVICE_PERMISSIONS,
  LOG_DRIVERS,
  ULIMIT_NAMES,
  type ContainerOptions,
  type Device,
  type LogConfiguration,
  type NetworkMode,
  type SecurityOptions,
  type Ulimit,
  type UlimitName,
} from '../model/task-definition.js';

/** The options of a container beyond the core, as received (see ContainerOptions). */
export interface ContainerOptionsInput {
  stopSignal?: string;
  linuxParameters?: {
    capabilities?: { add?: string[]; drop?: string[] };
    initProcessEnabled?: boolean;
    sharedMemorySizeMib?: number;
    tmpfs?: { containerPath: string; sizeMib?: number; mountOptions?: string[] }[];
    devices?: { hostPath: string; containerPath?: string; permissions?: string[] }[];
    maxSwapMib?: number;
    swappiness?: number;
  };
  systemControls?: { namespace: string; value: string }[];
  dockerSecurityOptions?: string[];
  disableNetworking?: boolean;
  interactive?: boolean;
  pseudoTerminal?: boolean;
  secrets?: { name: string; valueFrom: string }[];
  environmentFiles?: string[];
  logConfiguration?: { logDriver: string; options?: Record<string, string>; secretOptions?: { name: string; valueFrom: string }[] };
  links?: string[];
  ulimits?: { name: string; softLimit: number; hardLimit: number }[];
  readonlyRootFilesystem?: boolean;
  hostname?: string;
  extraHosts?: { hostname: string; ipAddress: string }[];
  dnsServers?: string[];
  dnsSearchDomains?: string[];
}

/** Bounds of the repeated fields, fixed (the resolver reads 3 servers and 6 search domains). */
export const OPTION_COUNTS = {
  links: 64,
  devices: 100,
  systemControls: 100,
  securityOptions: 10,
  tmpfs: 100,
  extraHosts: 100,
  dnsServers: 3,
  dnsSearchDomains: 6,
  capabilities: LINUX_CAPABILITIES.length + 1,
  ulimits: ULIMIT_NAMES.length,
  secrets: 100,
  environmentFiles: 10,
  logOptions: 64,
  logSecretOptions: 16,
};
/** The longest secret reference (an ARN is at most 2048 characters). */
const MAX_REFERENCE_BYTES = 2048;
const MAX_SIZE_MIB = 1024 * 1024;
/** Above this, a limit is not exact in a JSON number. */
const MAX_ULIMIT = Number.MAX_SAFE_INTEGER;
const HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const HOST_LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
/** tmpfs options a definition may set (besides size), as Docker's --tmpfs takes them. */
const TMPFS_FLAGS = new Set([
  'ro',
  'rw',
  'exec',
  'noexec',
  'suid',
  'nosuid',
  'dev',
  'nodev',
  'sync',
  'async',
  'dirsync',
  'atime',
  'noatime',
  'diratime',
  'nodiratime',
  'relatime',
  'norelatime',
  'strictatime',
  'nostrictatime',
]);
const TMPFS_VALUES: Record<string, RegExp> = { mode: /^[0-7]{3,4}$/, uid: /^\d{1,10}$/, gid: /^\d{1,10}$/, nr_inodes: /^\d{1,19}[kmg]?$/ };

const quote = (value: string) => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);

/** The first pass: counts of the repeated fields and the length of each string, before any content. */
export function checkOptionSizes(c: ContainerOptionsInput, at: (field: string) => string, stringBytes: number): FieldViolation[] {
  const v: FieldViolation[] = [];
  const count = (field: string, list: unknown[] | undefined, max: number) => {
    if ((list?.length ?? 0) > max) v.push({ field: at(field), description: `must have at most ${max} entries` });
  };
  count('linux_parameters.tmpfs', c.linuxParameters?.tmpfs, OPTION_COUNTS.tmpfs);
  count('linux_parameters.devices', c.linuxParameters?.devices, OPTION_COUNTS.devices);
  (c.linuxParameters?.devices ?? []).forEach((d, j) => count(`linux_parameters.devices[${j}].permissions`, d.permissions, DEVICE_PERMISSIONS.length));
  count('system_controls', c.systemControls, OPTION_COUNTS.systemControls);
  count('docker_security_options', c.dockerSecurityOptions, OPTION_COUNTS.securityOptions);
  count('links', c.links, OPTION_COUNTS.links);
  count('linux_parameters.capabilities.add', c.linuxParameters?.capabilities?.add, OPTION_COUNTS.capabilities);
  count('linux_parameters.capabilities.drop', c.linuxParameters?.capabilities?.drop, OPTION_COUNTS.capabilities);
  count('ulimits', c.ulimits, OPTION_COUNTS.ulimits);
  count('extra_hosts', c.extraHosts, OPTION_COUNTS.extraHosts);
  count('dns_servers', c.dnsServers, OPTION_COUNTS.dnsServers);
  count('dns_search_domains', c.dnsSearchDomains, OPTION_COUNTS.dnsSearchDomains);
  count('secrets', c.secrets, OPTION_COUNTS.secrets);
  count('environment_files', c.environmentFiles, OPTION_COUNTS.environmentFiles);
  count('log_configuration.options', Object.keys(c.logConfiguration?.options ?? {}), OPTION_COUNTS.logOptions);
  count('log_configuration.secret_options', c.logConfiguration?.secretOptions, OPTION_COUNTS.logSecretOptions);
  (c.linuxParameters?.tmpfs ?? []).forEach((t, j) => count(`linux_parameters.tmpfs[${j}].mount_options`, t.mountOptions, TMPFS_FLAGS.size + Object.keys(TMPFS_VALUES).length));
  if (v.length > 0) return v;
  const long = (field: string, value: string | undefined, max = stringBytes) => {
    if (value !== undefined && Buffer.byteLength(value) > max) v.push({ field: at(field), description: `must be at most ${max} bytes` });
  };
  long('stop_signal', c.stopSignal, 32);
  (c.secrets ?? []).forEach((s, j) => {
    long(`secrets[${j}].name`, s.name);
    long(`secrets[${j}].value_from`, s.valueFrom, MAX_REFERENCE_BYTES);
  });
  (c.environmentFiles ?? []).forEach((f, j) => long(`environment_files[${j}]`, f, MAX_REFERENCE_BYTES));
  long('log_configuration.log_driver', c.logConfiguration?.logDriver, 64);
  for (const [name, value] of Object.entries(c.logConfiguration?.options ?? {})) {
    long('log_configuration.options', name);
    long(`log_configuration.options[${name.slice(0, 64)}]`, value);
  }
  (c.logConfiguration?.secretOptions ?? []).forEach((s, j) => {
    long(`log_configuration.secret_options[${j}].name`, s.name, 256);
    long(`log_configuration.secret_options[${j}].value_from`, s.valueFrom, MAX_REFERENCE_BYTES);
  });
  long('hostname', c.hostname, 253);
  (c.extraHosts ?? []).forEach((h, j) => {
    long(`extra_hosts[${j}].hostname`, h.hostname, 253);
    long(`extra_hosts[${j}].ip_address`, h.ipAddress, 64);
  });
  (c.dnsServers ?? []).forEach((s, j) => long(`dns_servers[${j}]`, s, 64));
  (c.dnsSearchDomains ?? []).forEach((d, j) => long(`dns_search_domains[${j}]`, d, 253));
  (c.ulimits ?? []).forEach((u, j) => long(`ulimits[${j}].name`, u.name, 32));
  for (const side of ['add', 'drop'] as const) (c.linuxParameters?.capabilities?.[side] ?? []).forEach((name, j) => long(`linux_parameters.capabilities.${side}[${j}]`, name, 64));
  (c.linuxParameters?.devices ?? []).forEach((d, j) => {
    long(`linux_parameters.devices[${j}].host_path`, d.hostPath);
    long(`linux_parameters.devices[${j}].container_path`, d.containerPath);
    (d.permissions ?? []).forEach((p, k) => long(`linux_parameters.devices[${j}].permissions[${k}]`, p, 16));
  });
  (c.systemControls ?? []).forEach((s, j) => {
    long(`system_controls[${j}].namespace`, s.namespace, 128);
    long(`system_controls[${j}].value`, s.value, 1024);
  });
  (c.dockerSecurityOptions ?? []).forEach((o, j) => long(`docker_security_options[${j}]`, o, 256));
  (c.links ?? []).forEach((l, j) => long(`links[${j}]`, l, 64 + 254));
  (c.linuxParameters?.tmpfs ?? []).forEach((t, j) => {
    long(`linux_parameters.tmpfs[${j}].container_path`, t.containerPath);
    (t.mountOptions ?? []).forEach((o, k) => long(`linux_parameters.tmpfs[${j}].mount_options[${k}]`, o, 64));
  });
  return v;
}

/** "SIGTERM", "TERM", "sigterm" → "SIGTERM"; "15" → "15"; undefined when it names no signal. */
export function normalizeSignal(value: string): string | undefined {
  if (/^\d{1,2}$/.test(value)) return Number(value) >= 1 && Number(value) <= 64 ? String(Number(value)) : undefined;
  const upper = value.toUpperCase();
  const name = upper.startsWith('SIG') ? upper : `SIG${upper}`;
  return name in constants.signals ? name : undefined;
}

/** "sys_admin", "CAP_SYS_ADMIN" → "CAP_SYS_ADMIN"; "all" → "ALL"; undefined for an unknown name. */
export function normalizeCapability(value: string): string | undefined {
  const upper = value.toUpperCase();
  if (upper === 'ALL') return 'ALL';
  const name = upper.startsWith('CAP_') ? upper : `CAP_${upper}`;
  return (LINUX_CAPABILITIES as readonly string[]).includes(name) ? name : undefined;
}

/**
 * Validates the options of container `at`, pushing a violation per bad field. Paths must not
 * collide with `takenPaths` (the container's other mounts).
 */
export function validateContainerOptions(
  input: ContainerOptionsInput & { environment?: Record<string, string> },
  at: (field: string) => string,
  networkMode: NetworkMode | undefined,
  takenPaths: Set<string>,
  memoryLimited: boolean,
  v: FieldViolation[],
): ContainerOptions {
  const options: ContainerOptions = {};
  if (input.stopSignal) {
    const signal = normalizeSignal(input.stopSignal);
    if (!signal) v.push({ field: at('stop_signal'), description: `is not a signal name or number (got ${quote(input.stopSignal)})` });
    options.stopSignal = signal ?? input.stopSignal;
  }
  if (input.linuxParameters) options.linuxParameters = validateLinuxParameters(input.linuxParameters, at, takenPaths, v);
  if (options.linuxParameters?.maxSwapMib !== undefined && !memoryLimited) {
    v.push({ field: at('linux_parameters.max_swap_mib'), description: 'needs memory_mib: swap is allowed on top of a memory limit' });
  }
  if (input.disableNetworking) options.disableNetworking = true;
  if (input.secrets && input.secrets.length > 0) options.secrets = validateSecrets(input.secrets, input.environment ?? {}, at, v);
  if (input.environmentFiles && input.environmentFiles.length > 0) {
    input.environmentFiles.forEach((f, j) => {
      if (f === '' || f.includes('\0')) v.push({ field: at(`environment_files[${j}]`), description: 'must be a reference: not empty, no NUL byte' });
    });
    options.environmentFiles = [...input.environmentFiles];
  }
  if (input.logConfiguration) options.logConfiguration = validateLogConfiguration(input.logConfiguration, at, v);
  if (input.interactive) options.interactive = true;
  if (input.pseudoTerminal) options.pseudoTerminal = true;
  if (input.systemControls && input.systemControls.length > 0) options.systemControls = validateSystemControls(input.systemControls, at, input.disableNetworking ? 'none' : networkMode, v);
  if (input.dockerSecurityOptions && input.dockerSecurityOptions.length > 0) options.securityOptions = validateSecurityOptions(input.dockerSecurityOptions, at, v);
  if (input.links && input.links.length > 0) {
    if (networkMode !== 'bridge') v.push({ field: at('links'), description: `need network mode bridge (in mode ${networkMode} the containers reach each other otherwise)` });
    // Malformed ones are refused here and left out, so that they are not reported twice.
    options.links = input.links.flatMap((link, j) => {
      const [container = '', alias = container] = link.split(':');
      if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/.test(container) || !HOST_LABEL.test(alias) || link.split(':').length > 2) {
        v.push({ field: at(`links[${j}]`), description: `must be "container" or "container:alias" (got ${quote(link)})` });
        return [];
      }
      return [{ container, alias }];
    });
  }
  if (input.ulimits && input.ulimits.length > 0) options.ulimits = validateUlimits(input.ulimits, at, v);
  if (input.readonlyRootFilesystem) options.readonlyRootFilesystem = true;
  const sharedNamespace = networkMode === 'task' ? 'task' : undefined;
  if (input.hostname) {
    if (networkMode === 'host' || networkMode === 'task') {
      v.push({ field: at('hostname'), description: `cannot be set in network mode ${networkMode}, where the host name is the namespace's` });
    } else if (!HOST_LABEL.test(input.hostname) && !HOST_NAME.test(input.hostname)) {
      v.push({ field: at('hostname'), description: `must be a host name (letters, digits, "-" and ".") (got ${quote(input.hostname)})` });
    }
    options.hostname = input.hostname;
  }
  if (input.extraHosts && input.extraHosts.length > 0) {
    if (sharedNamespace) v.push({ field: at('extra_hosts'), description: 'cannot be set in network mode task (as in ECS awsvpc)' });
    input.extraHosts.forEach((h, j) => {
      if (!HOST_NAME.test(h.hostname)) v.push({ field: at(`extra_hosts[${j}].hostname`), description: `must be a host name (got ${quote(h.hostname)})` });
      if (isIP(h.ipAddress) === 0) v.push({ field: at(`extra_hosts[${j}].ip_address`), description: `must be an IP address (got ${quote(h.ipAddress)})` });
    });
    options.extraHosts = input.extraHosts.map((h) => ({ hostname: h.hostname, ipAddress: h.ipAddress }));
  }
  if (input.dnsServers && input.dnsServers.length > 0) {
    if (sharedNamespace) v.push({ field: at('dns_servers'), description: 'cannot be set in network mode task (as in ECS awsvpc)' });
    input.dnsServers.forEach((s, j) => {
      if (isIP(s) === 0) v.push({ field: at(`dns_servers[${j}]`), description: `must be an IP address (got ${quote(s)})` });
    });
    options.dnsServers = [...input.dnsServers];
  }
  if (input.dnsSearchDomains && input.dnsSearchDomains.length > 0) {
    if (sharedNamespace) v.push({ field: at('dns_search_domains'), description: 'cannot be set in network mode task (as in ECS awsvpc)' });
    input.dnsSearchDomains.forEach((d, j) => {
      if (!HOST_NAME.test(d)) v.push({ field: at(`dns_search_domains[${j}]`), description: `must be a domain name (got ${quote(d)})` });
    });
    options.dnsSearchDomains = [...input.dnsSearchDomains];
  }
  return options;
}

function validateLinuxParameters(input: NonNullable<ContainerOptionsInput['linuxParameters']>, at: (field: string) => string, takenPaths: Set<string>, v: FieldViolation[]) {
  const capabilities = input.capabilities && { add: [] as string[], drop: [] as string[] };
  for (const side of ['add', 'drop'] as const) {
    (input.capabilities?.[side] ?? []).forEach((name, j) => {
      const normalized = normalizeCapability(name);
      if (!normalized) v.push({ field: at(`linux_parameters.capabilities.${side}[${j}]`), description: `is not a Linux capability (got ${quote(name)})` });
      else if (!capabilities!.add.includes(normalized) && !capabilities!.drop.includes(normalized)) capabilities![side].push(normalized);
      else if (capabilities![side === 'add' ? 'drop' : 'add'].includes(normalized)) {
        v.push({ field: at(`linux_parameters.capabilities.${side}[${j}]`), description: `${normalized} is both added and dropped` });
      }
    });
  }
  const shm = input.sharedMemorySizeMib ?? 0;
  if (!Number.isInteger(shm) || shm < 0 || shm > MAX_SIZE_MIB) {
    v.push({ field: at('linux_parameters.shared_memory_size_mib'), description: `must be between 0 (default) and ${MAX_SIZE_MIB} MiB (got ${shm})` });
  }
  const tmpfs = (input.tmpfs ?? []).map((t, j) => {
    const tat = (field: string) => at(`linux_parameters.tmpfs[${j}].${field}`);
    if (!t.containerPath.startsWith('/') || t.containerPath === '/' || t.containerPath.includes('\0') || t.containerPath.includes(',') || t.containerPath.includes(':')) {
      v.push({ field: tat('container_path'), description: `must be an absolute path other than /, without "," or ":" (got ${quote(t.containerPath)})` });
    } else if (takenPaths.has(t.containerPath)) {
      v.push({ field: tat('container_path'), description: `${quote(t.containerPath)} is mounted twice` });
    }
    takenPaths.add(t.containerPath);
    const size = t.sizeMib ?? 0;
    if (!Number.isInteger(size) || size < 1 || size > MAX_SIZE_MIB) v.push({ field: tat('size_mib'), description: `must be between 1 and ${MAX_SIZE_MIB} MiB (got ${size})` });
    (t.mountOptions ?? []).forEach((option, k) => {
      const [key, value] = option.includes('=') ? [option.slice(0, option.indexOf('=')), option.slice(option.indexOf('=') + 1)] : [option, undefined];
      const ok = value === undefined ? TMPFS_FLAGS.has(key) : (TMPFS_VALUES[key]?.test(value) ?? false);
      if (!ok) v.push({ field: tat(`mount_options[${k}]`), description: `is not a tmpfs option berth passes on (got ${quote(option)}; size is size_mib)` });
    });
    return { containerPath: t.containerPath, sizeMib: size, mountOptions: [...(t.mountOptions ?? [])] };
  });
  const devices = (input.devices ?? []).map((d, j) => {
    const dat = (field: string) => at(`linux_parameters.devices[${j}].${field}`);
    if (!d.hostPath.startsWith('/dev/') || d.hostPath.includes('\0') || d.hostPath.split('/').includes('..')) {
      v.push({ field: dat('host_path'), description: `must be a path under /dev (got ${quote(d.hostPath)})` });
    }
    const containerPath = d.containerPath || d.hostPath;
    if (!containerPath.startsWith('/') || containerPath === '/' || containerPath.includes('\0'))
      v.push({ field: dat('container_path'), description: `must be an absolute path (got ${quote(containerPath)})` });
    const permissions = (d.permissions ?? []).map((p) => p.toLowerCase());
    permissions.forEach((p, k) => {
      if (!(DEVICE_PERMISSIONS as readonly string[]).includes(p)) v.push({ field: dat(`permissions[${k}]`), description: `must be read, write or mknod (got ${quote(p)})` });
    });
    return { hostPath: d.hostPath, containerPath, permissions: (permissions.length > 0 ? [...new Set(permissions)] : [...DEVICE_PERMISSIONS]) as Device['permissions'] };
  });
  if (input.maxSwapMib !== undefined && (!Number.isInteger(input.maxSwapMib) || input.maxSwapMib < 0 || input.maxSwapMib > MAX_SIZE_MIB * 64)) {
    v.push({ field: at('linux_parameters.max_swap_mib'), description: `must be between 0 and ${MAX_SIZE_MIB * 64} MiB (got ${input.maxSwapMib})` });
  }
  if (input.swappiness !== undefined && (!Number.isInteger(input.swappiness) || input.swappiness < 0 || input.swappiness > 100)) {
    v.push({ field: at('linux_parameters.swappiness'), description: `must be between 0 and 100 (got ${input.swappiness})` });
  }
  return {
    ...(capabilities ? { capabilities } : {}),
    initProcessEnabled: input.initProcessEnabled ?? false,
    sharedMemorySizeMib: shm,
    tmpfs,
    ...(devices.length > 0 ? { devices } : {}),
    ...(input.maxSwapMib !== undefined ? { maxSwapMib: input.maxSwapMib } : {}),
    ...(input.swappiness !== undefined ? { swappiness: input.swappiness } : {}),
  };
}

/** IPC sysctls that are per IPC namespace (the others of kernel.* are host-wide). */
const IPC_SYSCTLS = new Set(['kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem', 'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced']);
const SYSCTL_NAME = /^[a-z0-9_]+(\.[a-zA-Z0-9_-]+)+$/;

function validateSystemControls(input: { namespace: string; value: string }[], at: (field: string) => string, networkMode: NetworkMode | undefined, v: FieldViolation[]): Record<string, string> {
  const controls: Record<string, string> = {};
  input.forEach((s, j) => {
    const field = at(`system_controls[${j}].namespace`);
    const name = s.namespace;
    if (!SYSCTL_NAME.test(name)) v.push({ field, description: `is not a sysctl name (got ${quote(name)})` });
    else if (name in controls) v.push({ field, description: `${name} is set twice` });
    else if (name.startsWith('net.')) {
      if (networkMode === 'host' || networkMode === 'task')
        v.push({ field, description: `${name} would change a network namespace the container does not have to itself (network mode ${networkMode})` });
    } else if (!IPC_SYSCTLS.has(name) && !name.startsWith('fs.mqueue.')) {
      v.push({ field, description: `${name} is not namespaced: it would change the whole host` });
    }
    if (/[\0\n]/.test(s.value) || s.value === '') v.push({ field: at(`system_controls[${j}].value`), description: 'must be a non-empty line' });
    controls[name] = s.value;
  });
  return controls;
}

/** dockerSecurityOptions, "key:value" or "key=value" (ECS writes the one, Docker the other). */
function validateSecurityOptions(input: string[], at: (field: string) => string, v: FieldViolation[]): SecurityOptions {
  const options: SecurityOptions = { noNewPrivileges: false, seccompUnconfined: false };
  input.forEach((raw, j) => {
    const field = at(`docker_security_options[${j}]`);
    const separator = raw.search(/[:=]/);
    const [key, value] = separator < 0 ? [raw, ''] : [raw.slice(0, separator), raw.slice(separator + 1)];
    if (key === 'no-new-privileges' && (value === '' || value === 'true')) options.noNewPrivileges = true;
    else if (key === 'apparmor' && /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(value)) options.apparmorProfile = value;
    else if (key === 'seccomp' && value === 'unconfined') options.seccompUnconfined = true;
    else {
      v.push({ field, description: `berth applies no-new-privileges, apparmor:<loaded profile> and seccomp:unconfined (got ${quote(raw)})` });
    }
  });
  return options;
}

function validateUlimits(input: NonNullable<ContainerOptionsInput['ulimits']>, at: (field: string) => string, v: FieldViolation[]): Ulimit[] {
  const seen = new Set<string>();
  return input.map((u, j) => {
    const uat = (field: string) => at(`ulimits[${j}].${field}`);
    const name = u.name.toLowerCase() as UlimitName;
    if (!(ULIMIT_NAMES as readonly string[]).includes(name)) v.push({ field: uat('name'), description: `must be one of ${ULIMIT_NAMES.join(', ')} (got ${quote(u.name)})` });
    else if (seen.has(name)) v.push({ field: uat('name'), description: `${name} is set twice` });
    seen.add(name);
    const unlimited = u.softLimit === -1 && u.hardLimit === -1;
    if (!unlimited) {
      for (const side of ['softLimit', 'hardLimit'] as const) {
        const value = u[side];
        if (!Number.isInteger(value) || value < 0 || value > MAX_ULIMIT) {
          v.push({ field: uat(side === 'softLimit' ? 'soft_limit' : 'hard_limit'), description: `must be between 0 and ${MAX_ULIMIT}, or -1 on both sides for unlimited (got ${value})` });
        }
      }
      if (u.softLimit > u.hardLimit) v.push({ field: uat('soft_limit'), description: `must not exceed hard_limit (${u.softLimit} > ${u.hardLimit})` });
    }
    return { name, softLimit: u.softLimit, hardLimit: u.hardLimit };
  });
}

/** Secrets: valid variable names, each once and not also in `environment`, and a reference each. */
function validateSecrets(secrets: { name: string; valueFrom: string }[], environment: Record<string, string>, at: (field: string) => string, v: FieldViolation[]) {
  const seen = new Set<string>();
  secrets.forEach((s, j) => {
    if (s.name === '' || s.name.includes('=') || s.name.includes('\0')) v.push({ field: at(`secrets[${j}].name`), description: `invalid variable name ${quote(s.name)}` });
    else if (seen.has(s.name)) v.push({ field: at(`secrets[${j}].name`), description: `${quote(s.name)} is named twice` });
    else if (Object.hasOwn(environment, s.name)) v.push({ field: at(`secrets[${j}].name`), description: `${quote(s.name)} is also in environment: a variable has one source` });
    seen.add(s.name);
    if (s.valueFrom === '' || s.valueFrom.includes('\0')) v.push({ field: at(`secrets[${j}].value_from`), description: 'must be a reference: not empty, no NUL byte' });
  });
  return secrets.map((s) => ({ name: s.name, valueFrom: s.valueFrom }));
}

/** A known driver; option names and values without NUL bytes; secret options named once, not also plain options. */
function validateLogConfiguration(input: NonNullable<ContainerOptionsInput['logConfiguration']>, at: (field: string) => string, v: FieldViolation[]): LogConfiguration {
  const driver = input.logDriver as LogConfiguration['driver'];
  if (!(LOG_DRIVERS as readonly string[]).includes(driver))
    v.push({ field: at('log_configuration.log_driver'), description: `must be one of ${LOG_DRIVERS.join(', ')} (got ${quote(input.logDriver)})` });
  const options = input.options ?? {};
  for (const [name, value] of Object.entries(options)) {
    if (name === '' || name.includes('\0') || value.includes('\0')) v.push({ field: at('log_configuration.options'), description: `invalid option ${quote(name)}: not empty, no NUL byte` });
  }
  const seen = new Set<string>();
  const secretOptions = (input.secretOptions ?? []).map((s, j) => {
    if (s.name === '' || s.name.includes('\0')) v.push({ field: at(`log_configuration.secret_options[${j}].name`), description: 'must be an option name: not empty, no NUL byte' });
    else if (seen.has(s.name) || Object.hasOwn(options, s.name)) v.push({ field: at(`log_configuration.secret_options[${j}].name`), description: `${quote(s.name)} is given twice` });
    seen.add(s.name);
    if (s.valueFrom === '' || s.valueFrom.includes('\0')) v.push({ field: at(`log_configuration.secret_options[${j}].value_from`), description: 'must be a reference: not empty, no NUL byte' });
    return { name: s.name, valueFrom: s.valueFrom };
  });
  return { driver, options: { ...options }, secretOptions };
}
