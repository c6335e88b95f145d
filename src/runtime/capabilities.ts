import { readFileSync } from 'node:fs';

/** Linux capabilities by number (bit 0 = CAP_CHOWN … bit 40 = CAP_CHECKPOINT_RESTORE). */
export const LINUX_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_DAC_READ_SEARCH',
  'CAP_FOWNER',
  'CAP_FSETID',
  'CAP_KILL',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETPCAP',
  'CAP_LINUX_IMMUTABLE',
  'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST',
  'CAP_NET_ADMIN',
  'CAP_NET_RAW',
  'CAP_IPC_LOCK',
  'CAP_IPC_OWNER',
  'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO',
  'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE',
  'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN',
  'CAP_SYS_BOOT',
  'CAP_SYS_NICE',
  'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG',
  'CAP_MKNOD',
  'CAP_LEASE',
  'CAP_AUDIT_WRITE',
  'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP',
  'CAP_MAC_OVERRIDE',
  'CAP_MAC_ADMIN',
  'CAP_SYSLOG',
  'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ',
  'CAP_PERFMON',
  'CAP_BPF',
  'CAP_CHECKPOINT_RESTORE',
] as const;

let bounding: string[] | undefined;

/**
 * The capabilities a privileged container can have here: those in the agent's bounding set (the
 * daemons run beside it). On a host that is itself confined, that is fewer than all of them, and
 * asking runc for one outside the set fails the start.
 */
export function hostCapabilities(): string[] {
  if (!bounding) {
    const line = readFileSync('/proc/self/status', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('CapBnd:'));
    const mask = BigInt(`0x${line?.split(/\s+/)[1] ?? '0'}`);
    bounding = LINUX_CAPABILITIES.filter((_, bit) => (mask >> BigInt(bit)) & 1n);
  }
  return bounding;
}

/** The capabilities a container has by default on every runtime (Docker's and containerd's set). */
export const DEFAULT_CAPABILITIES = [
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

/**
 * The capability set of a container: the defaults plus `add` (every capability of the host when
 * `add` has ALL) minus `drop` (all but `add` when `drop` has ALL). Names are CAP_ names or ALL;
 * the order is the kernel's.
 */
export function capabilitySet(add: string[], drop: string[]): string[] {
  const added = add.filter((c) => c !== 'ALL');
  const base = add.includes('ALL') ? hostCapabilities() : [...DEFAULT_CAPABILITIES, ...added];
  const kept = drop.includes('ALL') ? added : base.filter((c) => !drop.includes(c) || added.includes(c));
  const set = new Set(kept);
  return LINUX_CAPABILITIES.filter((c) => set.has(c));
}
