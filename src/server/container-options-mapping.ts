/**
 * Conversions of the container options beyond the core (Linux parameters, ulimits, names and
 * resolution, security options, links) between the protobuf messages and the engine's types.
 */
import type { ContainerOptionsInput } from '../engine/admission/container-options-validation.js';
import type { ContainerOptions } from '../engine/model/task-definition.js';
import type { ContainerDefinition as PbContainerDefinition } from '../gen/berth/agent/v1/task_definition.js';

/** The container options of a request, unvalidated; unset proto fields are left out. */
export function containerOptionsInput(c: PbContainerDefinition): ContainerOptionsInput {
  const linux = c.linuxParameters;
  return {
    stopSignal: c.stopSignal || undefined,
    linuxParameters: linux && {
      capabilities: linux.capabilities && { add: linux.capabilities.add, drop: linux.capabilities.drop },
      initProcessEnabled: linux.initProcessEnabled,
      sharedMemorySizeMib: linux.sharedMemorySizeMib,
      tmpfs: linux.tmpfs.map((t) => ({ containerPath: t.containerPath, sizeMib: t.sizeMib, mountOptions: t.mountOptions })),
      devices: linux.devices.map((d) => ({ hostPath: d.hostPath, containerPath: d.containerPath, permissions: d.permissions })),
      maxSwapMib: linux.maxSwapMib,
      swappiness: linux.swappiness,
    },
    systemControls: c.systemControls.map((s) => ({ namespace: s.namespace, value: s.value })),
    dockerSecurityOptions: c.dockerSecurityOptions,
    disableNetworking: c.disableNetworking,
    interactive: c.interactive,
    pseudoTerminal: c.pseudoTerminal,
    secrets: c.secrets.map((s) => ({ name: s.name, valueFrom: s.valueFrom })),
    environmentFiles: c.environmentFiles,
    logConfiguration: c.logConfiguration && {
      logDriver: c.logConfiguration.logDriver,
      options: c.logConfiguration.options,
      secretOptions: c.logConfiguration.secretOptions.map((s) => ({ name: s.name, valueFrom: s.valueFrom })),
    },
    links: c.links,
    ulimits: c.ulimits.map((u) => ({ name: u.name, softLimit: u.softLimit, hardLimit: u.hardLimit })),
    readonlyRootFilesystem: c.readonlyRootFilesystem,
    hostname: c.hostname || undefined,
    extraHosts: c.extraHosts.map((h) => ({ hostname: h.hostname, ipAddress: h.ipAddress })),
    dnsServers: c.dnsServers,
    dnsSearchDomains: c.dnsSearchDomains,
  };
}

/** Security options as the client writes them (for definitions saved before the client's form was kept). */
function securityOptionStrings(options: ContainerOptions['securityOptions']): string[] {
  if (!options) return [];
  return [
    ...(options.noNewPrivileges ? ['no-new-privileges'] : []),
    ...(options.apparmorProfile ? [`apparmor:${options.apparmorProfile}`] : []),
    ...(options.seccompUnconfined ? ['seccomp:unconfined'] : []),
  ];
}

/** The container options of a validated definition, as proto fields. */
export function pbContainerOptions(
  c: ContainerOptions,
): Pick<
  PbContainerDefinition,
  | 'stopSignal'
  | 'linuxParameters'
  | 'ulimits'
  | 'readonlyRootFilesystem'
  | 'hostname'
  | 'extraHosts'
  | 'dnsServers'
  | 'dnsSearchDomains'
  | 'systemControls'
  | 'dockerSecurityOptions'
  | 'disableNetworking'
  | 'interactive'
  | 'pseudoTerminal'
  | 'secrets'
  | 'environmentFiles'
  | 'logConfiguration'
  | 'links'
> {
  const linux = c.linuxParameters;
  return {
    stopSignal: c.stopSignal ?? '',
    linuxParameters: linux && {
      capabilities: linux.capabilities && { add: [...linux.capabilities.add], drop: [...linux.capabilities.drop] },
      initProcessEnabled: linux.initProcessEnabled,
      sharedMemorySizeMib: linux.sharedMemorySizeMib,
      tmpfs: linux.tmpfs.map((t) => ({ ...t, mountOptions: [...t.mountOptions] })),
      devices: (linux.devices ?? []).map((d) => ({ ...d, permissions: [...d.permissions] })),
      maxSwapMib: linux.maxSwapMib,
      swappiness: linux.swappiness,
    },
    systemControls: Object.entries(c.systemControls ?? {}).map(([namespace, value]) => ({ namespace, value })),
    dockerSecurityOptions: securityOptionStrings(c.securityOptions),
    disableNetworking: c.disableNetworking ?? false,
    interactive: c.interactive ?? false,
    pseudoTerminal: c.pseudoTerminal ?? false,
    secrets: (c.secrets ?? []).map((s) => ({ ...s })),
    environmentFiles: [...(c.environmentFiles ?? [])],
    logConfiguration: c.logConfiguration && {
      logDriver: c.logConfiguration.driver,
      options: { ...c.logConfiguration.options },
      secretOptions: c.logConfiguration.secretOptions.map((s) => ({ ...s })),
    },
    links: (c.links ?? []).map((l) => (l.alias === l.container ? l.container : `${l.container}:${l.alias}`)),
    ulimits: (c.ulimits ?? []).map((u) => ({ ...u })),
    readonlyRootFilesystem: c.readonlyRootFilesystem ?? false,
    hostname: c.hostname ?? '',
    extraHosts: (c.extraHosts ?? []).map((h) => ({ ...h })),
    dnsServers: [...(c.dnsServers ?? [])],
    dnsSearchDomains: [...(c.dnsSearchDomains ?? [])],
  };
}
