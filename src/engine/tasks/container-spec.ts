import type { ContainerSpec } from '../../runtime/types.js';
import { canonicalImage } from '../images/image-manager.js';
import { LABELS, runtimeContainerName } from './labels.js';
import { containerMounts } from './container-mounts.js';
import { METADATA_URI_VARIABLES } from '../network/metadata-uris.js';
import type { ContainerDefinition, TaskDefinition, Ulimit } from '../model/task-definition.js';
import { capabilitySet } from '../../runtime/capabilities.js';

const MIB = 1024 * 1024;
const DEVICE_ACCESS = { read: 'r', write: 'w', mknod: 'm' } as const;

/** The runtime-neutral spec of a task's container. Berth's labels are written last, so they win. */
export interface SpecInputs {
  agentId: string;
  runtimeName: string;
  /** Host port of each port mapping, in order (dynamic ones already chosen). */
  hostPorts: number[];
  gpuIds: string[];
  /** Used when the container sets no pids limit of its own. */
  defaultPidsLimit: number;
  /** Used for each name the container sets no limit of. */
  defaultUlimits: Ulimit[];
  /**
   * Replaces the task's network mode: "none" for a pause container (which holds the namespace
   * only), "container" or "namespace" to join the task's namespace (port mappings are then the CNI
   * network's business, not the runtime's).
   */
  network?: Pick<ContainerSpec, 'network' | 'networkContainer' | 'networkNamespacePath' | 'networkHolder'>;
  /** The container's task metadata URI, when the agent serves the endpoint and the container can reach it. */
  metadataUri?: string;
  /** The task's cgroup, when it has task-level cpu or memory. */
  cgroupParent?: string;
  /** The container's log driver and options, its secret options resolved for this create. */
  logConfiguration?: ContainerSpec['logConfiguration'];
  /** Variables of the container's environment files and its secrets, resolved for this create. */
  resolvedEnvironment?: { fromFiles: Record<string, string>; secrets: Record<string, string> };
}

export function containerSpec(task: TaskDefinition, container: ContainerDefinition, inputs: SpecInputs): ContainerSpec {
  const { agentId, runtimeName } = inputs;
  return {
    name: runtimeName,
    image: canonicalImage(container.image),
    command: container.command.length > 0 ? container.command : undefined,
    entrypoint: container.entrypoint.length > 0 ? container.entrypoint : undefined,
    // Files first: environment and secrets win over them.
    env: { ...inputs.resolvedEnvironment?.fromFiles, ...container.environment, ...inputs.resolvedEnvironment?.secrets, ...metadataEnvironment(inputs.metadataUri) },
    workingDir: container.workingDirectory || undefined,
    user: container.user || undefined,
    labels: {
      ...container.labels,
      [LABELS.taskId]: task.id,
      [LABELS.containerName]: container.name,
      [LABELS.family]: task.family,
      [LABELS.revision]: String(task.revision),
      [LABELS.agentId]: agentId,
    },
    cpuShares: container.cpuUnits,
    memoryBytes: container.memoryMib * MIB,
    memoryReservationBytes: container.memoryReservationMib * MIB,
    // disable_networking: a namespace of the container's own with loopback only, whatever the task's mode.
    network: container.disableNetworking ? 'none' : (inputs.network?.network ?? (task.networkMode === 'task' ? 'none' : task.networkMode)),
    networkContainer: container.disableNetworking ? undefined : inputs.network?.networkContainer,
    ...(inputs.network?.networkNamespacePath && !container.disableNetworking ? { networkNamespacePath: inputs.network.networkNamespacePath } : {}),
    ...(inputs.network?.networkHolder ? { networkHolder: true } : {}),
    ports: inputs.network || container.disableNetworking ? [] : container.portMappings.map((p, i) => ({ ...p, hostPort: inputs.hostPorts[i] ?? p.hostPort })),
    pidsLimit: container.pidsLimit || inputs.defaultPidsLimit,
    ...(inputs.cgroupParent ? { cgroupParent: inputs.cgroupParent } : {}),
    ...(inputs.logConfiguration ? { logConfiguration: inputs.logConfiguration } : {}),
    gpuIds: [...inputs.gpuIds],
    ...containerMounts(agentId, task, container),
    privileged: container.privileged ?? false,
    ...optionsSpec(container, inputs.defaultUlimits),
    ...namespacesSpec(task, inputs.network),
    links: container.links?.map((l) => ({ name: l.container, alias: l.alias, runtimeName: runtimeContainerName(agentId, task.id, l.container) })),
  };
}

/**
 * The process and IPC namespaces: the host's, or in mode task the pause container's, which the
 * other containers join as they join its network (the pause container itself keeps its own, and
 * lets them join its IPC namespace).
 */
function namespacesSpec(task: TaskDefinition, network: SpecInputs['network']): Pick<ContainerSpec, 'pidNamespace' | 'ipcNamespace'> {
  const holder = network?.networkContainer?.id;
  const isPause = network?.network === 'none';
  const spec: Pick<ContainerSpec, 'pidNamespace' | 'ipcNamespace'> = {};
  if (task.pidMode === 'host' && !isPause) spec.pidNamespace = 'host';
  else if (task.pidMode === 'task' && holder) spec.pidNamespace = { containerId: holder };
  if (task.ipcMode === 'host' && !isPause) spec.ipcNamespace = 'host';
  else if (task.ipcMode === 'none' && !isPause) spec.ipcNamespace = 'none';
  else if (task.ipcMode === 'task') spec.ipcNamespace = holder ? { containerId: holder } : isPause ? 'shareable' : undefined;
  return spec;
}

/** The runtime spec of the container options beyond the core; unset ones are left out. */
function optionsSpec(container: ContainerDefinition, defaultUlimits: Ulimit[]): Partial<ContainerSpec> {
  const linux = container.linuxParameters;
  const own = container.ulimits ?? [];
  const ulimits = [...defaultUlimits.filter((d) => !own.some((u) => u.name === d.name)), ...own];
  return {
    stopSignal: container.stopSignal || undefined,
    capabilities: linux?.capabilities && !container.privileged ? capabilitySet(linux.capabilities.add, linux.capabilities.drop) : undefined,
    init: linux?.initProcessEnabled || undefined,
    shmSizeBytes: linux?.sharedMemorySizeMib ? linux.sharedMemorySizeMib * MIB : undefined,
    tmpfs: linux?.tmpfs.length ? linux.tmpfs.map((t) => ({ containerPath: t.containerPath, sizeBytes: t.sizeMib * MIB, options: [...t.mountOptions] })) : undefined,
    ulimits: ulimits.length > 0 ? ulimits.map((u) => ({ name: u.name, soft: u.softLimit, hard: u.hardLimit })) : undefined,
    readonlyRootfs: container.readonlyRootFilesystem || undefined,
    hostname: container.hostname || undefined,
    extraHosts: container.extraHosts?.length ? container.extraHosts.map((h) => ({ ...h })) : undefined,
    dnsServers: container.dnsServers?.length ? [...container.dnsServers] : undefined,
    dnsSearchDomains: container.dnsSearchDomains?.length ? [...container.dnsSearchDomains] : undefined,
    devices: linux?.devices?.map((d) => ({ hostPath: d.hostPath, containerPath: d.containerPath, access: d.permissions.map((p) => DEVICE_ACCESS[p]).join('') })),
    swapBytes: linux?.maxSwapMib !== undefined ? linux.maxSwapMib * MIB : undefined,
    swappiness: linux?.swappiness,
    sysctls: container.systemControls ? { ...container.systemControls } : undefined,
    noNewPrivileges: container.securityOptions?.noNewPrivileges || undefined,
    apparmorProfile: container.securityOptions?.apparmorProfile,
    seccompUnconfined: container.securityOptions?.seccompUnconfined || undefined,
    openStdin: container.interactive || undefined,
    tty: container.pseudoTerminal || undefined,
  };
}

/** The metadata URI under each variable name that carries it (ECS's and berth's); nothing without one. */
function metadataEnvironment(uri: string | undefined): Record<string, string> {
  return uri ? Object.fromEntries(METADATA_URI_VARIABLES.map((name) => [name, uri])) : {};
}
