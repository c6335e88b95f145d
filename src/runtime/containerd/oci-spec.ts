import type { OciImageConfig } from '../oci/media-types.js';
import { hostCapabilities } from '../capabilities.js';
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
}

const CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

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
  const capabilities = privileged ? hostCapabilities() : CAPABILITIES;
  const namespaces: { type: string; path?: string }[] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  if (spec.network !== 'host') namespaces.push(input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' });
  const resources: Record<string, unknown> = {
    devices: privileged
      ? [{ allow: true, access: 'rwm' }]
      : [{ allow: false, access: 'rwm' }, ...ALLOWED_DEVICES.map(([major, minor]) => ({ allow: true, type: 'c', major, ...(minor === null ? {} : { minor }), access: 'rwm' }))],
  };
  if (spec.memoryBytes > 0 || spec.memoryReservationBytes > 0) {
    resources.memory = {
      ...(spec.memoryBytes > 0 ? { limit: spec.memoryBytes, swap: spec.memoryBytes } : {}),
      ...(spec.memoryReservationBytes > 0 ? { reservation: spec.memoryReservationBytes } : {}),
    };
  }
  if (spec.cpuShares > 0) resources.cpu = { shares: Math.max(2, spec.cpuShares) };
  if (spec.pidsLimit && spec.pidsLimit > 0) resources.pids = { limit: spec.pidsLimit };
  const bind = (destination: string, source: string) => ({ destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'] });
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: input.user,
      args: processArgs(spec, image),
      env: processEnv(spec, image),
      cwd: spec.workingDir || image.config?.WorkingDir || '/',
      capabilities: { bounding: capabilities, effective: capabilities, permitted: capabilities },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: !privileged,
      ...(!privileged && input.apparmorProfile ? { apparmorProfile: input.apparmorProfile } : {}),
    },
    root: { path: 'rootfs', readonly: false },
    hostname: spec.network === 'host' ? undefined : input.id.slice(0, 63),
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', privileged ? 'rw' : 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: [privileged ? 'rw' : 'ro', 'nosuid', 'noexec', 'nodev'] },
      { destination: '/run', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      bind('/etc/hosts', input.files.hosts),
      bind('/etc/hostname', input.files.hostname),
      bind('/etc/resolv.conf', input.files.resolvConf),
      ...(spec.mounts ?? []).map((m) => ({ destination: m.containerPath, type: 'bind', source: m.hostPath, options: ['rbind', m.readOnly ? 'ro' : 'rw'] })),
    ],
    linux: {
      namespaces,
      resources,
      cgroupsPath: `/${input.namespace}/${input.id}`,
      // A privileged container sees /proc and /sys as the host does.
      maskedPaths: privileged ? [] : MASKED_PATHS,
      readonlyPaths: privileged ? [] : READONLY_PATHS,
      // As Docker: a privileged container runs without a filter.
      ...(privileged ? {} : { seccomp: defaultSeccompProfile() }),
    },
  };
}
