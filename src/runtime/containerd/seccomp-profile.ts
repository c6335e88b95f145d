/**
 * The seccomp filter of an unprivileged container on containerd. Docker applies its default
 * profile to every container it runs; containerd applies none unless asked. So that a workload
 * sees the same kernel on both runtimes, berth refuses the system calls Docker's default profile
 * refuses to a container without extra capabilities: kernel modules and keyrings, mounting and
 * namespaces, clocks, swap, reboot, tracing of other processes, NUMA policy, BPF and perf.
 *
 * The filter lists what is refused and allows the rest, so a system call newer than the list is
 * allowed (Docker's profile, an allowlist, refuses those). runc skips names its libseccomp does not
 * know, so the list holds calls of every architecture.
 */

const EPERM = 1;
const ENOSYS = 38;

const REFUSED = [
  // Kernel modules, kexec, reboot, accounting, swap.
  'create_module',
  'init_module',
  'finit_module',
  'delete_module',
  'query_module',
  'get_kernel_syms',
  'kexec_load',
  'kexec_file_load',
  'reboot',
  'acct',
  'swapon',
  'swapoff',
  'nfsservctl',
  'uselib',
  // Keyrings, which are not namespaced.
  'add_key',
  'request_key',
  'keyctl',
  // Mounting and namespaces (CAP_SYS_ADMIN in Docker's profile).
  'mount',
  'umount',
  'umount2',
  'pivot_root',
  'unshare',
  'setns',
  'open_tree',
  'move_mount',
  'mount_setattr',
  'fsopen',
  'fsconfig',
  'fsmount',
  'fspick',
  'quotactl',
  'quotactl_fd',
  'lookup_dcookie',
  'name_to_handle_at',
  'open_by_handle_at',
  // Clocks, shared by the whole host.
  'settimeofday',
  'stime',
  'clock_settime',
  'clock_settime64',
  'clock_adjtime',
  'clock_adjtime64',
  'adjtimex',
  // Other processes' memory (CAP_SYS_PTRACE) and NUMA policy (CAP_SYS_NICE).
  'process_vm_readv',
  'process_vm_writev',
  'kcmp',
  'get_mempolicy',
  'set_mempolicy',
  'mbind',
  'move_pages',
  // Kernel interfaces with a history of exploits.
  'bpf',
  'perf_event_open',
  'userfaultfd',
  'syslog',
  'ustat',
  'sysfs',
  '_sysctl',
  'ioperm',
  'iopl',
  'vm86',
  'vm86old',
];

/** clone flags that make a namespace; clone with any of them is refused, as unshare is. */
const NAMESPACE_FLAGS = [0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000];

const ARCHITECTURES: Record<string, string[]> = {
  x64: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'],
  arm64: ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM'],
};

/** The OCI `linux.seccomp` section for an unprivileged container on this host's architecture. */
export function defaultSeccompProfile(arch: string = process.arch): Record<string, unknown> {
  return {
    defaultAction: 'SCMP_ACT_ALLOW',
    architectures: ARCHITECTURES[arch] ?? [],
    syscalls: [
      { names: REFUSED, action: 'SCMP_ACT_ERRNO', errnoRet: EPERM },
      // clone3 passes its flags in memory a filter cannot read: "not implemented" makes the C
      // library fall back to clone, whose flags the rules below can check.
      { names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: ENOSYS },
      ...NAMESPACE_FLAGS.map((flag) => ({
        names: ['clone'],
        action: 'SCMP_ACT_ERRNO',
        errnoRet: EPERM,
        args: [{ index: 0, value: flag, valueTwo: flag, op: 'SCMP_CMP_MASKED_EQ' }],
      })),
    ],
  };
}
