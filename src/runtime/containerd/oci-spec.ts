import type { OciImageConfig } from '../oci/media-types.js';
import { DEFAULT_CAPABILITIES, hostCapabilities } from '../capabilities.js';
import { defaultSeccompProfile } from './seccomp-profile.js';
import type { ContainerSpec } from '../types.js';

/** A user as the OCI spec wants it. */
export interface OciUser {
  uid: number;
  gid: number;
  additionalGids?: number[];
}

export interface SpecFiles {
  /** Host files bind-mounted read-only over the container's /etc/hosts, /etc/hostname, /etc/resolv.conf. */
  hosts: string;
  hostname: string;
  resolvConf: string;
}

export interface RuntimeSpecInput {
  id: string;
  namespace: string;
  spec: ContainerSpec;
  image: OciImageConfig;
  user: OciUser;
  files: SpecFiles;
  /** Path of a network namespace to join; undefined for a new one (or none with host networking). */
  netnsPath?: string;
  /** AppArmor profile of an unprivileged container. */
  apparmorProfile?: string;
  /** The host's init binary (a static tini), mounted at /sbin/docker-init when the spec asks for an init. */
  initBinary?: string;
  /** The container's volumes, as the host directories to bind. */
  volumeBinds?: VolumeBind[];
  /** The spec's devices, as the host has them. */
  devices?: DeviceNode[];
  /** The process and IPC namespaces: the host's, a path to join, or (unset) new ones. */
  pidNamespace?: 'host' | string;
  ipcNamespace?: 'host' | string;
}

/** A host device as the OCI spec creates it in the container and allows it in the device cgroup. */
export interface DeviceNode {
  containerPath: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  fileMode: number;
  uid: number;
  gid: number;
  access: string;
}

/** A volume's host directory and where the container sees it. */
export interface VolumeBind {
  containerPath: string;
  source: string;
  readOnly: boolean;
}

/** Where the init is in the container, as with Docker's --init. */
export const INIT_PATH = '/sbin/docker-init';

/** RLIM_INFINITY, which a JSON number of JavaScript cannot hold exactly: written by `specJson`. */
const UNLIMITED = '\u0000unlimited';

const RLIM_INFINITY = '18446744073709551615';

/** A spec (or a process of one) as containerd takes it, with unlimited rlimits as 2^64-1. */
export function specJson(spec: Record<string, unknown>): string {
  return JSON.stringify(spec).replaceAll(JSON.stringify(UNLIMITED), RLIM_INFINITY);
}

/**
 * The inverse of `specJson`: unlimited rlimits (2^64-1, which JSON.parse rounds) read back as
 * unlimited. berth writes no other limit above 2^53.
 */
export function parseSpec(json: string): { process?: Record<string, unknown> } & Record<string, unknown> {
  const spec = JSON.parse(json) as { process?: { rlimits?: { soft: unknown; hard: unknown }[] } };
  for (const rlimit of spec.process?.rlimits ?? []) {
    if (typeof rlimit.soft === 'number' && rlimit.soft > Number.MAX_SAFE_INTEGER) rlimit.soft = UNLIMITED;
    if (typeof rlimit.hard === 'number' && rlimit.hard > Number.MAX_SAFE_INTEGER) rlimit.hard = UNLIMITED;
  }
  return spec as { process?: Record<string, unknown> } & Record<string, unknown>;
}

const OPPOSITE_FLAGS: Record<string, string> = {
  ro: 'rw',
  exec: 'noexec',
  suid: 'nosuid',
  dev: 'nodev',
  sync: 'async',
  atime: 'noatime',
  diratime: 'nodiratime',
  relatime: 'norelatime',
  strictatime: 'nostrictatime',
};
for (const [flag, opposite] of Object.entries(OPPOSITE_FLAGS)) OPPOSITE_FLAGS[opposite] = flag;

/** A tmpfs's options as Docker merges them: noexec,nosuid,nodev, then the definition's (each replacing its opposite), then the size. */
export function tmpfsOptions(options: string[], sizeBytes: number): string[] {
  const merged: string[] = [];
  for (const option of ['noexec', 'nosuid', 'nodev', ...options]) {
    const key = option.split('=')[0]!;
    const clashes = (existing: string) => existing === option || existing === OPPOSITE_FLAGS[option] || (option.includes('=') && existing.startsWith(`${key}=`));
    for (let i = merged.length - 1; i >= 0; i--) if (clashes(merged[i]!)) merged.splice(i, 1);
    merged.push(option);
  }
  return [...merged, `size=${sizeBytes}`];
}

const MASKED_PATHS = ['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'];

const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Character devices a container may use (null, zero, full, random, urandom, tty, console, ptmx, pts). */
const ALLOWED_DEVICES: [number, number | null][] = [
  [1, 3],
  [1, 5],
  [1, 7],
  [1, 8],
  [1, 9],
  [5, 0],
  [5, 1],
  [5, 2],
  [136, null],
];

const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** The process arguments, by Docker's rules for entrypoint and command overrides. */
export function processArgs(spec: Pick<ContainerSpec, 'entrypoint' | 'command'>, image: OciImageConfig): string[] {
  const imageEntrypoint = image.config?.Entrypoint ?? [];
  const imageCmd = image.config?.Cmd ?? [];
  if (spec.entrypoint) return [...spec.entrypoint, ...(spec.command ?? [])];
  return [...imageEntrypoint, ...(spec.command ?? imageCmd)];
}

/** The image's environment with the spec's variables replacing or added to it. */
export function processEnv(spec: Pick<ContainerSpec, 'env'>, image: OciImageConfig): string[] {
  const env = new Map<string, string>();
  for (const entry of image.config?.Env ?? [DEFAULT_PATH]) {
    const eq = entry.indexOf('=');
    env.set(eq < 0 ? entry : entry.slice(0, eq), eq < 0 ? '' : entry.slice(eq + 1));
  }
  if (!env.has('PATH')) env.set('PATH', DEFAULT_PATH.slice(5));
  for (const [key, value] of Object.entries(spec.env)) env.set(key, value);
  return [...env].map(([key, value]) => `${key}=${value}`);
}

/**
 * The OCI runtime spec of a container: containerd's defaults (namespaces, mounts, capabilities,
 * masked and read-only paths, device cgroup), Docker's confinement (a seccomp filter), the image's config, the spec's overrides and limits,
 * and /etc/hosts, /etc/hostname and /etc/resolv.conf from berth.
 */
export function runtimeSpec(input: RuntimeSpecInput): Record<string, unknown> {
  const { spec, image } = input;
  const privileged = spec.privileged === true;
  const capabilities = privileged ? hostCapabilities() : (spec.capabilities ?? DEFAULT_CAPABILITIES);
  const joined = (type: 'pid' | 'ipc', how: string | undefined) => (how === 'host' ? [] : [how ? { type, path: how } : { type }]);
  const namespaces: { type: string; path?: string }[] = [...joined('pid', input.pidNamespace), ...joined('ipc', input.ipcNamespace), { type: 'uts' }, { type: 'mount' }];
  if (spec.network !== 'host') namespaces.push(input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' });
  const resources: Record<string, unknown> = {
    devices: privileged
      ? [{ allow: true, access: 'rwm' }]
      : [{ allow: false, access: 'rwm' }, ...ALLOWED_DEVICES.map(([major, minor]) => ({ allow: true, type: 'c', major, ...(minor === null ? {} : { minor }), access: 'rwm' }))],
  };
  const devices = input.devices ?? [];
  if (!privileged) (resources.devices as object[]).push(...devices.map((d) => ({ allow: true, type: d.type, major: d.major, minor: d.minor, access: d.access })));
  if (spec.memoryBytes > 0 || spec.memoryReservationBytes > 0 || spec.swappiness !== undefined) {
    resources.memory = {
      // As Docker: swap (memory and swap together) is twice the limit unless the spec says how much.
      ...(spec.memoryBytes > 0 ? { limit: spec.memoryBytes, swap: spec.memoryBytes + (spec.swapBytes ?? spec.memoryBytes) } : {}),
      ...(spec.memoryReservationBytes > 0 ? { reservation: spec.memoryReservationBytes } : {}),
      ...(spec.swappiness !== undefined ? { swappiness: spec.swappiness } : {}),
    };
  }
  if (spec.cpuShares > 0) resources.cpu = { shares: Math.max(2, spec.cpuShares) };
  if (spec.pidsLimit && spec.pidsLimit > 0) resources.pids = { limit: spec.pidsLimit };
  const bind = (destination: string, source: string) => ({ destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  const args = processArgs(spec, image);
  const apparmorProfile = spec.apparmorProfile ?? input.apparmorProfile;
  const rlimit = (value: number) => (value === -1 ? UNLIMITED : value);
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: spec.tty === true,
      user: input.user,
      args: spec.init ? [INIT_PATH, '--', ...args] : args,
      env: processEnv(spec, image),
      cwd: spec.workingDir || image.config?.WorkingDir || '/',
      capabilities: { bounding: capabilities, effective: capabilities, permitted: capabilities },
      // None set: the runtime's own limits are inherited, as on Docker.
      rlimits: (spec.ulimits ?? []).map((u) => ({ type: `RLIMIT_${u.name.toUpperCase()}`, soft: rlimit(u.soft), hard: rlimit(u.hard) })),
      // Off unless asked for, as on Docker.
      noNewPrivileges: spec.noNewPrivileges === true,
      ...(!privileged && apparmorProfile && apparmorProfile !== 'unconfined' ? { apparmorProfile } : {}),
    },
    root: { path: 'rootfs', readonly: spec.readonlyRootfs === true },
    hostname: spec.network === 'host' ? undefined : (spec.hostname ?? input.id.slice(0, 63)),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      // IPC mode none (as Docker's): no /dev/shm at all.
      ...(spec.ipcNamespace === 'none'
        ? []
        : [{ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', spec.shmSizeBytes ? `size=${spec.shmSizeBytes}` : 'size=65536k'] }]),
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: [privileged ? 'rw' : 'ro', 'nosuid', 'noexec', 'nodev'] },
      { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      bind('/etc/hosts', input.files.hosts),
      bind('/etc/hostname', input.files.hostname),
      bind('/etc/resolv.conf', input.files.resolvConf),
      ...(spec.mounts ?? []).map((m) => ({ destination: m.containerPath, type: 'bind', source: m.hostPath, options: ['rbind', m.readOnly ? 'ro' : 'rw'] })),
      ...(input.volumeBinds ?? []).map((v) => ({ destination: v.containerPath, type: 'bind', source: v.source, options: ['rbind', v.readOnly ? 'ro' : 'rw'] })),
      ...(spec.tmpfs ?? []).map((t) => ({ destination: t.containerPath, type: 'tmpfs', source: 'tmpfs', options: tmpfsOptions(t.options, t.sizeBytes) })),
      ...(spec.init && input.initBinary ? [{ destination: INIT_PATH, type: 'bind', source: input.initBinary, options: ['rbind', 'ro', 'nosuid', 'nodev'] }] : []),
    ],
    linux: {
      namespaces,
      resources,
      // In the task's cgroup when it has one (its limits cover all of its containers), else containerd's default.
      cgroupsPath: spec.cgroupParent ? `${spec.cgroupParent}/${input.id}` : `/${input.namespace}/${input.id}`,
      // A privileged container sees /proc and /sys as the host does.
      maskedPaths: privileged ? [] : MASKED_PATHS,
      readonlyPaths: privileged ? [] : READONLY_PATHS,
      // As Docker: a privileged container runs without a filter.
      ...(privileged || spec.seccompUnconfined ? {} : { seccomp: defaultSeccompProfile() }),
      ...(spec.sysctls ? { sysctl: { ...spec.sysctls } } : {}),
      devices: devices.map((d) => ({ path: d.containerPath, type: d.type, major: d.major, minor: d.minor, fileMode: d.fileMode, uid: d.uid, gid: d.gid })),
    },
  };
}
